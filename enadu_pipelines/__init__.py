"""enadu-pipelines: the Enadu team's release flow as code.

The package has two halves. ``enadu_pipelines`` itself runs on a developer's or administrator's
machine (config, rendering, bundling, Jenkins bootstrap); ``enadu_pipelines.helper`` runs inside
Jenkins builds, bundled as one zipapp.
"""

__version__ = "0.1.0"
