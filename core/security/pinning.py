"""Connect to the address that was checked, not to whatever DNS answers next (DNS rebinding).

:func:`core.security.urls.check_url` resolves a host once and checks every answer is public. If
the HTTP client then resolved the name again, a hostile DNS server could answer a public address
to the check and ``127.0.0.1`` to the client. So the downloader sends the request to the checked
address itself and keeps the original name where TLS and HTTP need it:

* :func:`pinned_target` - the URL with the checked IP in place of the host (userinfo and fragment
  dropped) and a ``Host`` header with the original name;
* :class:`PinningAdapter` - for such a request, the TLS connection uses the original name for SNI
  and for the certificate check (urllib3's ``server_hostname``; Python's ``ssl`` matches the
  certificate against it). Connection pools are keyed by address *and* name, so a pooled
  connection is never reused for another name.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from requests import PreparedRequest
from requests.adapters import HTTPAdapter

from core.security.urls import CheckedUrl


def pinned_target(checked: CheckedUrl, address: str) -> tuple[str, dict[str, str]]:
    """``(url, headers)`` that reach ``address`` for ``checked.url`` (see the module docstring)."""
    parts = urlsplit(checked.url)
    ip = ipaddress.ip_address(address)
    netloc = f"[{ip}]" if ip.version == 6 else str(ip)
    if parts.port is not None:
        netloc += f":{parts.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return url, {"Host": _host_header(checked)}


class PinningAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that gives a pinned https request (IP literal in the URL, another name in
    ``Host``) that name for SNI and certificate verification. Other requests are untouched."""

    def build_connection_pool_key_attributes(
        self, request: PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        name = _pinned_name(request)
        if name is not None and host_params.get("scheme") == "https":
            pool_kwargs["server_hostname"] = name
        return host_params, pool_kwargs


def _host_header(checked: CheckedUrl) -> str:
    host = checked.host
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return host if checked.port == 443 else f"{host}:{checked.port}"


def _pinned_name(request: PreparedRequest) -> str | None:
    """The ``Host`` header's name when the URL's host is an IP literal and the name differs."""
    raw = request.headers.get("Host")
    header = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    url = request.url.decode("latin-1") if isinstance(request.url, bytes) else request.url
    url_host = urlsplit(url or "").hostname or ""
    if not header:
        return None
    try:
        ipaddress.ip_address(url_host)
    except ValueError:
        return None
    name = urlsplit(f"//{header}").hostname or ""
    return name if name and name != url_host else None
