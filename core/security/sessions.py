"""HTTP sessions that take nothing from the process environment (issue 7 item 12).

``requests`` by default reads ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY``, ``~/.netrc`` (or
``$NETRC``) credentials and ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` from the environment of
whatever process it runs in. A worker that inherits a proxy variable would send the ClaimX token
through it; a CA bundle variable could make it trust a private CA. :func:`isolated_session` turns
all of that off (``trust_env = False``); a proxy is used only when a setting names one.
"""

from __future__ import annotations

import requests


def isolated_session(*, proxy_url: str | None = None) -> requests.Session:
    """A ``requests.Session`` with ``trust_env`` off and, when given, this one proxy for both schemes."""
    session = requests.Session()
    session.trust_env = False
    if proxy_url:
        session.proxies = {"http": proxy_url, "https": proxy_url}
    return session
