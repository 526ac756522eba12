"""The downloader connects to the address it checked (issue 7 item 10: DNS rebinding).

Real HTTPS servers on 127.0.0.1 with certificates from a CA made for this test. Name resolution is
the one thing substituted, and only for this test's names, at ``socket.getaddrinfo`` (the resolver
every client here uses): ``rebind.example.com`` answers a public address the first time and
``127.0.0.1`` (the "attacker" server) after that; the public address itself is routed to the
"legitimate" server on loopback, because a test cannot listen on a public address. The code under
test is not patched.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from core.download import DownloadPolicy, download_to_file, new_session
from core.errors import ErrorCategory, PipelineError
from core.security.urls import UrlPolicy, UrlRejected, check_url
from tests.tls import make_server_cert

pytestmark = pytest.mark.integration

PDF = b"%PDF-1.4\n" + b"p" * 2000
PUBLIC_IP = "93.184.216.34"  # a global address: passes the SSRF check
HOST = "rebind.example.com"


@dataclass
class TlsServer:
    name: str
    httpd: ThreadingHTTPServer
    hosts: list[str] = field(default_factory=list)
    snis: list[str | None] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])


def _serve(name: str, cert_names: list[str], folder: Path) -> tuple[TlsServer, Path]:
    files = make_server_cert(folder, cert_names)
    record: dict[str, TlsServer] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            record["s"].hosts.append(self.headers.get("Host", ""))
            body = PDF + name.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/pdf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files.cert, files.key)
    ctx.sni_callback = lambda _sock, sni, _ctx: record["s"].snis.append(sni)  # type: ignore[assignment,return-value]  # - ssl's stub wants an int-returning callback; None means "go on"
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    server = TlsServer(name, httpd)
    record["s"] = server
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return server, files.ca


@dataclass
class Resolver:
    """``socket.getaddrinfo`` for this test's names only; every other name goes to the real one."""

    real: object
    routes: dict[str, list[tuple[str, int]]]
    calls: dict[str, int] = field(default_factory=dict)

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in self.routes:
            return self.real(host, port, family, type, proto, flags)  # type: ignore[operator]  # - the saved socket.getaddrinfo
        count = self.calls.get(name, 0)
        self.calls[name] = count + 1
        answers = self.routes[name]
        ip, real_port = answers[min(count, len(answers) - 1)]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, real_port or port))]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[TlsServer, TlsServer, Path]]:
    legit, ca = _serve("legit", [HOST], tmp_path / "legit")
    attacker, attacker_ca = _serve("attacker", [HOST], tmp_path / "attacker")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(ca.read_bytes() + attacker_ca.read_bytes())  # both would be trusted
    yield legit, attacker, bundle
    for s in (legit, attacker):
        s.httpd.shutdown()
        s.httpd.server_close()


def _policy(**changes: object) -> DownloadPolicy:
    url_policy = UrlPolicy(allowed_hosts=(HOST, "wrong.example.com"), **changes)  # type: ignore[arg-type]  # - test overrides by keyword
    return DownloadPolicy(
        url_policy=url_policy, max_bytes=1_000_000, timeout_seconds=5, read_timeout_seconds=2
    )


def test_download__connects_to_the_checked_address_not_a_rebound_answer(
    servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    legit, attacker, bundle = servers
    resolver = Resolver(
        socket.getaddrinfo,
        {HOST: [(PUBLIC_IP, 0), ("127.0.0.1", attacker.port)], PUBLIC_IP: [("127.0.0.1", legit.port)]},
    )
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    session = new_session()
    session.verify = str(bundle)

    result = download_to_file(session, f"https://{HOST}/exports/ok.pdf", tmp_path / "f", _policy())

    assert (tmp_path / "f").read_bytes().endswith(b"legit") and result.bytes_downloaded == len(PDF) + 5
    assert attacker.hosts == [], "the second (rebound) DNS answer was used"
    assert resolver.calls[HOST] == 1, "the name was resolved again after the check"
    assert legit.hosts == [HOST] and legit.snis == [HOST]  # Host and SNI keep the original name


def test_download__certificate_is_checked_against_the_original_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other, ca = _serve("other", ["other.example.com"], tmp_path / "other")
    try:
        resolver = Resolver(
            socket.getaddrinfo,
            {"wrong.example.com": [(PUBLIC_IP, 0)], PUBLIC_IP: [("127.0.0.1", other.port)]},
        )
        monkeypatch.setattr(socket, "getaddrinfo", resolver)
        session = new_session()
        session.verify = str(ca)
        with pytest.raises(PipelineError) as info:
            download_to_file(session, "https://wrong.example.com/a.pdf", tmp_path / "f", _policy())
        assert info.value.category is ErrorCategory.TRANSIENT
        assert "certificate" in str(info.value).lower() or "hostname" in str(info.value).lower()
        assert other.hosts == [] and not (tmp_path / "f").exists()
    finally:
        other.httpd.shutdown()
        other.httpd.server_close()


def test_check_url__returns_the_checked_addresses_and_refuses_other_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolver = Resolver(socket.getaddrinfo, {HOST: [(PUBLIC_IP, 0)]})
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    checked = check_url(f"https://{HOST}/a.pdf", UrlPolicy((HOST,)))
    assert (checked.host, checked.port, checked.addresses) == (HOST, 443, (PUBLIC_IP,))
    with pytest.raises(UrlRejected, match="Port not allowed: 8443"):
        check_url(f"https://{HOST}:8443/a.pdf", UrlPolicy((HOST,)))
    assert check_url(f"https://{HOST}:8443/a.pdf", UrlPolicy((HOST,), allowed_ports=(443, 8443))).port == 8443


def test_download__redirect_to_another_port_is_blocked(servers, tmp_path: Path) -> None:
    """A redirect target is checked like the first URL, the port rule included (DEV routing)."""
    legit, _attacker, _bundle = servers

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", f"https://{HOST}:8443/x.pdf")
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        policy = _policy(
            dev_simulator_url=f"http://127.0.0.1:{httpd.server_address[1]}", dev_simulator_hosts=(HOST,)
        )
        with pytest.raises(PipelineError) as info:
            download_to_file(requests.Session(), f"https://{HOST}/a.pdf", tmp_path / "f", policy)
        assert str(info.value) == "Redirect blocked: Port not allowed: 8443"
    finally:
        httpd.shutdown()
        httpd.server_close()
