"""The one rule for sending a secret over plain HTTP: only to the machine itself.

A credential (the Discord webhook URL, a Grafana token) may travel in clear only to a loopback
host, which never leaves the agent; anything else needs https. The webhook client, the Grafana
client and the configuration loader all ask :func:`cleartext_problem`, so the rule is one rule.
"""

from __future__ import annotations

import re
from typing import Optional
from urllib.parse import urlsplit

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback(hostname: Optional[str]) -> bool:
    return (hostname or "").lower() in LOOPBACK_HOSTS


# The whole authority of a plain-http URL that may carry a secret: a loopback host and a port, nothing
# else. Matching the authority as a whole (not urlsplit's .hostname) matters: parsers disagree about
# netlocs such as 'evil.com\\@127.0.0.1' (urlsplit: 127.0.0.1; urllib3, which requests connects
# with: evil.com) or '[::1].evil.com'.
_LOOPBACK_AUTHORITY = re.compile(r"(?:localhost|127\.0\.0\.1|\[::1\])(?::[0-9]{1,5})?", re.IGNORECASE)


def cleartext_problem(url: str, what: str) -> Optional[str]:
    """Why ``url`` must not carry ``what`` (a secret), or None when it may: https, or http to loopback."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and _LOOPBACK_AUTHORITY.fullmatch(parts.netloc) and url[len("http://"):].lower(
    ).startswith(parts.netloc.lower()):
        return None
    return (f"must use https (plain http only to loopback: {', '.join(LOOPBACK_HOSTS)}),"
            f" or it would send {what} in clear")
