"""The one rule for sending a secret over plain http (helper/loopback.py): only to loopback, and
"loopback" is what the HTTP client will really connect to, not what one URL parser believes.

urllib.parse and urllib3 (which requests connects with) split some netlocs differently: for
``http://evil.com\\@127.0.0.1/`` urlsplit sees host 127.0.0.1 while urllib3 connects to evil.com (an
outside review of issue 13 found it; each case below names what urllib3 would connect to).
"""

from __future__ import annotations

import pytest
from urllib3.util import parse_url

from enadu_pipelines.helper.loopback import cleartext_problem


@pytest.mark.parametrize("url", [
    "http://evil.com\\@127.0.0.1/",
    "http://evil.com\\\\@localhost:3000/x",
    "http://evil.com#@127.0.0.1/",
    "http://evil.com?@127.0.0.1/",
    "http://user@evil.com/",
    "http://127.0.0.1.evil.com/",
    "http://localhost.evil.com/",
    "http://[::1].evil.com/",
    "http://evil.com/127.0.0.1",
    "ftp://127.0.0.1/",
    "http:/127.0.0.1/",
    "http:127.0.0.1",
])
def test_cleartext_is_refused_unless_the_client_would_connect_to_loopback(url):
    assert cleartext_problem(url, "the token"), f"{url!r} allowed; urllib3 connects to {parse_url(url).host!r}"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:3000/api", "http://localhost/", "http://[::1]:9090/", "HTTP://LOCALHOST:80/",
    "https://grafana.example.com/", "https://evil.example/",
])
def test_https_and_loopback_http_are_allowed(url):
    assert cleartext_problem(url, "the token") is None
