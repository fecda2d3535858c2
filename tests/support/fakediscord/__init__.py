"""A fake Discord webhook endpoint for tests: real HTTP on 127.0.0.1, Discord's validation rules,
scriptable 429s, 5xx, slow answers and dropped connections. See server.py and validate.py."""

from .server import Drop, FakeDiscord, RateLimited, Request, ServerError, Slow
from .validate import check, length, pings

__all__ = ["Drop", "FakeDiscord", "RateLimited", "Request", "ServerError", "Slow", "check", "length", "pings"]
