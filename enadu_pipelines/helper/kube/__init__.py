"""Kubernetes side of the helper: the API client, the deploy lock, watches and blue/green steps.

(A regular package, not a namespace package: zipimport, which runs the bundled helper, cannot
import namespace packages.)
"""
