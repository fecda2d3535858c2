"""A fake Grafana annotations endpoint on loopback for the annotation tests (see ``server``)."""

from .server import Annotation, FakeGrafana

__all__ = ["Annotation", "FakeGrafana"]
