"""The helper that runs inside Jenkins builds (bundled as ``resources/enadu/enadu-helper.pyz``).

It must start fast and need nothing but ``python3`` on the agent: modules import their heavy
dependencies (kubernetes, requests) only inside the commands that use them.
"""
