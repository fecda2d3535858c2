"""A fake Jenkins controller on loopback for the bootstrap tests and benchmark (see ``server``)."""

from .server import VERSION, FakeJenkins, Logged, User
from .xstream import DEFAULT_PLUGINS

__all__ = ["DEFAULT_PLUGINS", "VERSION", "FakeJenkins", "Logged", "User"]
