"""Attachment URL validation against SSRF (SPEC §9.1 as decided in DECISIONS "Security and robustness").

Contract of :func:`validate_url`:

* https only; any other scheme is rejected (``Must be HTTPS, got http``, ``Invalid scheme: ftp``);
* the host (lower-cased, userinfo, port and a trailing dot ignored) must equal an allow-list entry, or
  be a sub-domain of a ``*.suffix`` entry (``*.example.com`` matches ``a.example.com``, not
  ``example.com``);
* loopback / private / link-local / unique-local / reserved addresses and well-known metadata or
  loopback names are rejected even when allow-listed, in every spelling :mod:`ipaddress` or
  ``inet_aton`` accepts (``[::1]``, ``2130706433``, ``0x7f.1``, ``::ffff:127.0.0.1``);
* the port (443 when absent) must be in ``allowed_ports`` (default 443 only);
* with DNS checks on, every address the host resolves to must be public; a name that does not resolve
  is a transient failure (the DNS may come back). :func:`check_url` returns those checked addresses
  so the caller connects to one of them (``core.download`` pins the connection: no second DNS
  answer - a rebinding to loopback - is ever used).

DEV ONLY: hosts listed in ``dev_simulator_hosts`` (when ``dev_simulator_url`` is set) pass the same
checks on their original ``https://host/...`` form but skip DNS; :func:`fetch_url_for` then maps them
onto the local simulator. ``dev_simulator_url`` must be a loopback URL (:func:`is_loopback_url`),
so development routing can never send a production download elsewhere. Nothing here opens a
connection.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit

from urllib3.util import parse_url

from core.errors import ConfigError, PermanentError, TransientError
from core.security.redact import sanitize_error

if TYPE_CHECKING:
    from core.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Names that always mean "this machine" or a cloud metadata service, whatever DNS says.
_BLOCKED_NAMES = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "ip6-localhost",
        "ip6-loopback",
        "metadata",
        "metadata.google.internal",
        "metadata.aws.internal",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")


class UrlRejected(PermanentError):
    """A URL failed validation. ``reason`` is the SPEC §9.1 reason; the message prefixes it."""

    def __init__(self, reason: str) -> None:
        self.reason = sanitize_error(reason)
        super().__init__(f"URL validation failed: {self.reason}")


@dataclass(frozen=True)
class UrlPolicy:
    """Which attachment hosts may be fetched. Entries are compared lower-case."""

    allowed_hosts: tuple[str, ...]
    dev_simulator_url: str | None = None
    dev_simulator_hosts: tuple[str, ...] = ()
    resolve_dns: bool = True
    allowed_ports: tuple[int, ...] = (443,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_hosts", _normalise_entries(self.allowed_hosts))
        object.__setattr__(self, "dev_simulator_hosts", _normalise_entries(self.dev_simulator_hosts))
        object.__setattr__(self, "allowed_ports", tuple(int(p) for p in self.allowed_ports))
        if self.dev_simulator_url and not is_loopback_url(self.dev_simulator_url):
            raise ConfigError("DEV_SIMULATOR_URL must be a loopback URL (http://127.0.0.1:PORT)")

    @classmethod
    def from_settings(cls, s: Settings) -> UrlPolicy:
        return cls(
            allowed_hosts=tuple(s.allowed_attachment_domains),
            dev_simulator_url=s.dev_simulator_url or None,
            dev_simulator_hosts=tuple(s.dev_simulator_hosts),
            allowed_ports=tuple(s.allowed_attachment_ports),
        )

    def is_simulated(self, host: str) -> bool:
        """True when ``host`` is served by the DEV simulator under this policy."""
        return bool(self.dev_simulator_url) and _normalise_host(host) in self.dev_simulator_hosts


@dataclass(frozen=True)
class CheckedUrl:
    """A URL that passed :func:`check_url`, with what the connection must use."""

    url: str
    host: str
    """Lower-cased host name (or IP literal): SNI, certificate name and ``Host``."""
    port: int
    addresses: tuple[str, ...]
    """The checked public addresses to connect to; empty when DNS was not consulted (a DEV
    simulator host, or DNS checks off)."""


def validate_url(url: str, policy: UrlPolicy, *, resolve: bool | None = None) -> str:
    """Return the URL's lower-cased host, or raise :class:`UrlRejected` (permanent).

    ``resolve`` overrides ``policy.resolve_dns``. Raises :class:`TransientError` when DNS checks are on
    and the host does not resolve.
    """
    return check_url(url, policy, resolve=resolve).host


def check_url(url: str, policy: UrlPolicy, *, resolve: bool | None = None) -> CheckedUrl:
    """:func:`validate_url`, returning the checked addresses too (see :class:`CheckedUrl`)."""
    parts = _split(url)
    host = _normalise_host(parts.hostname or "")
    if not host:
        raise UrlRejected("No hostname in URL")
    scheme = parts.scheme.lower()
    if scheme == "http":
        raise UrlRejected("Must be HTTPS, got http")
    if scheme != "https":
        raise UrlRejected(f"Invalid scheme: {scheme or '(none)'}")
    if is_private_host(host):
        raise UrlRejected(f"Private or loopback address: {host}")
    _check_host_syntax(url, host)
    if not _host_allowed(host, policy.allowed_hosts):
        raise UrlRejected(f"Domain not in allowlist: {host}")
    port = parts.port or 443
    if port not in policy.allowed_ports:
        raise UrlRejected(f"Port not allowed: {port}")
    do_resolve = policy.resolve_dns if resolve is None else resolve
    addresses: tuple[str, ...] = ()
    if do_resolve and not policy.is_simulated(host):
        literal = _literal_ip(host)
        addresses = (str(literal),) if literal is not None else _check_resolved(host, port)
    return CheckedUrl(url=url.strip(), host=host, port=port, addresses=addresses)


def is_loopback_url(url: str) -> bool:
    """True for an http(s) URL whose host is a loopback address or ``localhost``."""
    try:
        parts = urlsplit(url.strip())
        name = _normalise_host(parts.hostname or "")
        _ = parts.port
    except (ValueError, AttributeError):
        return False
    if parts.scheme not in ("http", "https") or not name:
        return False
    return is_loopback_host(name)


def is_loopback_host(name: str) -> bool:
    """True for ``localhost`` or a loopback IP literal (``name`` lower-case, without brackets)."""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_private_host(host: str) -> bool:
    """True for loopback/metadata names and non-public literal IPs. Never consults DNS."""
    name = _normalise_host(host)
    if not name:
        return False
    if name in _BLOCKED_NAMES or name.endswith(".localhost"):
        return True
    address = _literal_ip(name)
    return address is not None and not _is_public(address)


def fetch_url_for(url: str, policy: UrlPolicy) -> str:
    """The URL actually requested: the DEV simulator form for simulated hosts, else ``url`` itself.

    Call only after :func:`validate_url` accepted ``url``.
    """
    parts = _split(url)
    host = _normalise_host(parts.hostname or "")
    if not policy.is_simulated(host):
        return url
    base = (policy.dev_simulator_url or "").rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{base}/{host}{parts.path or '/'}{query}"


# --- helpers ---------------------------------------------------------------------------------------


def _normalise_entries(entries: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return tuple(e for e in (_normalise_host(x) for x in entries) if e)


def _normalise_host(host: str) -> str:
    return host.strip().strip("[]").lower().rstrip(".")


def _split(url: str) -> SplitResult:
    if not isinstance(url, str) or not url.strip():
        raise UrlRejected("Empty URL")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise UrlRejected("Invalid URL format: control characters in URL")
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        raise UrlRejected(f"Invalid URL format: {exc}") from exc
    return parts


def _check_host_syntax(url: str, host: str) -> None:
    """Reject hosts another parser could read differently (the client uses urllib3's parser)."""
    if _literal_ip(host) is None and not set(host) <= _HOST_CHARS:
        raise UrlRejected(f"Invalid URL format: invalid characters in host {host!r}")
    try:
        other = _normalise_host(parse_url(url.strip()).host or "")
    except ValueError as exc:  # urllib3's LocationParseError is a ValueError
        raise UrlRejected(f"Invalid URL format: {exc}") from exc
    if other != host:
        raise UrlRejected(f"Invalid URL format: ambiguous host {host!r}")


def _host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    is_ip = _literal_ip(host) is not None
    for entry in allowed:
        if entry.startswith("*."):
            suffix = entry[1:]  # ".example.com"
            if not is_ip and host.endswith(suffix) and len(host) > len(suffix):
                return True
        elif host == entry:
            return True
    return False


def _literal_ip(host: str) -> IPAddress | None:
    """The address a resolver would read from ``host`` without DNS, in any accepted spelling."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not host or not set(host) <= set("0123456789abcdefx."):
        return None
    try:  # legacy forms: 2130706433, 0x7f.1, 0177.0.0.1, 127.1
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and not _is_public(embedded):
            return False
    return address.is_global and not address.is_multicast


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _check_resolved(host: str, port: int) -> tuple[str, ...]:
    """Resolve once; every answer must be public. Returns them in resolver order, deduplicated."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise TransientError(f"Connection error: cannot resolve {host}") from exc
    if not infos:
        raise TransientError(f"Connection error: cannot resolve {host}")
    found: list[str] = []
    for info in infos:
        raw = str(info[4][0]).split("%", 1)[0]
        try:
            address = ipaddress.ip_address(raw)
        except ValueError as exc:
            raise UrlRejected(f"Private or loopback address: {host}") from exc
        if not _is_public(address):
            raise UrlRejected(f"Private or loopback address: {host}")
        if str(address) not in found:
            found.append(str(address))
    return tuple(found)
