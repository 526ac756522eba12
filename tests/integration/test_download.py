"""The shared downloader against a real HTTP server on 127.0.0.1, reached through the DEV rewrite.

The server answers ``/{host}/{path}`` like the project's simulator does; the production URL checks
run on the original ``https://{host}/...`` form. Nothing here is mocked.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from core.download import DownloadPolicy, DownloadResult, download_to_file, new_session
from core.errors import ErrorCategory, PipelineError
from core.security.urls import UrlPolicy
from tests.fakes.http import serving

pytestmark = pytest.mark.integration

ALLOWED = ("xn-exportreceiver.s3.example.com", "claimx-media.s3.example.com", "files.example.com")
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 400  # ~100 KiB
ROOT = Path(__file__).resolve().parents[2]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: list[str]

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # http.server's naming
        parts = urlsplit(self.path)
        host, _, rest = parts.path.lstrip("/").partition("/")
        self.server.hits.append(f"{host}/{rest}")  # type: ignore[attr-defined]  # set by the fixture
        route = getattr(self, "_r_" + rest.split("/", 1)[0].split(".", 1)[0].replace("-", "_"), None)
        if route is None:
            return self._send(404, b"not found", "text/plain")
        route(rest)

    # --- helpers --------------------------------------------------------------------------------
    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str | None = "application/pdf",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str | None, status: int = 302) -> None:
        self._send(status, b"", None, {"Location": location} if location is not None else {})

    def _chunked(self, pieces: Iterator[bytes], content_type: str = "application/pdf") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for piece in pieces:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client hung up on purpose (size limit, timeout)

    # --- routes: first path segment after the host, up to the first '.' ------------------------
    def _r_ok(self, rest: str) -> None:
        self._send(200, PDF, "application/pdf; charset=binary")

    def _r_photo(self, rest: str) -> None:
        self._send(200, b"\xff\xd8\xff" + b"j" * 1000, "image/jpeg")

    def _r_no_type(self, rest: str) -> None:
        self._send(200, PDF, None)

    def _r_mismatch(self, rest: str) -> None:
        self._send(200, PDF, "image/jpeg")

    def _r_html(self, rest: str) -> None:
        self._send(200, b"<html></html>", "text/html")

    def _r_big(self, rest: str) -> None:
        self._send(200, b"x" * 5000)

    def _r_chunked_big(self, rest: str) -> None:
        self._chunked(b"y" * 1000 for _ in range(50))

    def _r_chunked_ok(self, rest: str) -> None:
        self._chunked(PDF[i : i + 7000] for i in range(0, len(PDF), 7000))

    def _r_status(self, rest: str) -> None:  # status/<code>.pdf
        code = int(rest.split("/")[1].split(".")[0])
        headers = {"Retry-After": "42"} if code in (429, 503) else {}
        self._send(code, b"error", "text/plain", headers)

    def _r_to_allowed(self, rest: str) -> None:
        self._redirect("https://claimx-media.s3.example.com/ok.pdf?X-Amz-Signature=secret123")

    def _r_to_relative(self, rest: str) -> None:
        self._redirect("../ok.pdf", 307)

    def _r_to_untrusted(self, rest: str) -> None:
        self._redirect("https://untrusted.example.net/exports/invoice.pdf")

    def _r_to_http(self, rest: str) -> None:
        self._redirect("http://files.example.com/ok.pdf", 301)

    def _r_to_simulator(self, rest: str) -> None:
        port = self.server.server_address[1]
        self._redirect(f"http://127.0.0.1:{port}/files.example.com/ok.pdf")

    def _r_to_metadata(self, rest: str) -> None:
        self._redirect("https://169.254.169.254/latest/meta-data/iam.pdf")

    def _r_no_location(self, rest: str) -> None:
        self._redirect(None)

    def _r_loop(self, rest: str) -> None:
        self._redirect("/loop.pdf")

    def _r_chain(self, rest: str) -> None:  # chain/<n>.pdf -> chain/<n-1>.pdf ... chain/0.pdf serves
        n = int(rest.split("/")[1].split(".")[0])
        self._redirect(f"https://files.example.com/chain/{n - 1}.pdf") if n > 0 else self._r_ok(rest)

    def _r_slow(self, rest: str) -> None:
        time.sleep(3)
        self._r_ok(rest)

    def _r_drip(self, rest: str) -> None:
        def drip() -> Iterator[bytes]:
            for _ in range(60):
                time.sleep(0.1)
                yield b"d"

        self._chunked(drip())

    def _r_truncated(self, rest: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/pdf")
        self.send_header("Content-Length", "10000")
        self.end_headers()
        self.wfile.write(b"z" * 5000)
        self.close_connection = True

    def _r_gzip(self, rest: str) -> None:
        self._send(200, gzip.compress(PDF), "application/pdf", {"Content-Encoding": "gzip"})

    def _r_gzip_bomb(self, rest: str) -> None:
        self._send(200, gzip.compress(b"\0" * 20_000_000), "application/pdf", {"Content-Encoding": "gzip"})

    def _r_brotli(self, rest: str) -> None:
        self._send(200, b"\x00\x01", "application/pdf", {"Content-Encoding": "br"})

    def _r_large(self, rest: str) -> None:  # large/<mib>.pdf, streamed without holding it in memory
        mib = int(rest.split("/")[1].split(".")[0])
        block = b"L" * 65536
        self.send_response(200)
        self.send_header("Content-Type", "application/pdf")
        self.send_header("Content-Length", str(mib * 1024 * 1024))
        self.end_headers()
        try:
            for _ in range(mib * 16):
                self.wfile.write(block)
        except OSError:
            pass


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadingHTTPServer]:
    with serving(_Handler, "download-test-server") as httpd:
        httpd.hits = []  # type: ignore[attr-defined]  # the handler's request log
        yield httpd


@pytest.fixture
def policy(server: ThreadingHTTPServer) -> DownloadPolicy:
    url_policy = UrlPolicy(
        allowed_hosts=ALLOWED,
        dev_simulator_url=f"http://127.0.0.1:{server.server_address[1]}",
        dev_simulator_hosts=ALLOWED,
    )
    return DownloadPolicy(
        url_policy=url_policy, max_bytes=20_000_000, timeout_seconds=5, read_timeout_seconds=2
    )


@pytest.fixture
def session() -> Iterator[requests.Session]:
    s = new_session(pool_size=4)
    yield s
    s.close()


def _with(policy: DownloadPolicy, **changes: object) -> DownloadPolicy:
    return DownloadPolicy(**{**policy.__dict__, **changes})  # type: ignore[arg-type]  # test knobs


def _no_part_files(root: Path) -> None:
    assert not list(root.rglob("*.part")), "a .part file was left behind"


def _fail(
    session: requests.Session, url: str, tmp_path: Path, policy: DownloadPolicy, category: ErrorCategory
) -> PipelineError:
    dest = tmp_path / "cache" / "trace-1" / "file.pdf"
    with pytest.raises(PipelineError) as info:
        download_to_file(session, url, dest, policy)
    assert info.value.category is category, str(info.value)
    assert not dest.exists()
    _no_part_files(tmp_path)
    return info.value


# --- success ----------------------------------------------------------------------------------------


def test_download__200_with_matching_type_writes_file(session, policy, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "trace-1" / "Proof_Of_Loss.pdf"
    url = "https://xn-exportreceiver.s3.example.com/ok.pdf?X-Amz-Date=20991231T000000Z&X-Amz-Expires=60"
    result = download_to_file(session, url, dest, policy)
    assert result == DownloadResult(dest, len(PDF), "application/pdf", 200, hashlib.sha256(PDF).hexdigest())
    assert dest.read_bytes() == PDF
    _no_part_files(tmp_path)


def test_download__missing_content_type_is_accepted(session, policy, tmp_path: Path) -> None:
    result = download_to_file(session, "https://files.example.com/no-type.pdf", tmp_path / "a.pdf", policy)
    assert result.content_type is None and result.bytes_downloaded == len(PDF)


def test_download__chunked_body_without_length(session, policy, tmp_path: Path) -> None:
    result = download_to_file(session, "https://files.example.com/chunked-ok.pdf", tmp_path / "c.pdf", policy)
    assert (tmp_path / "c.pdf").read_bytes() == PDF and result.bytes_downloaded == len(PDF)


def test_download__query_file_name_supplies_extension(session, policy, tmp_path: Path) -> None:
    url = "https://files.example.com/photo/8d7f6e5d?sign=abc&filename=kitchen.jpg"
    result = download_to_file(session, url, tmp_path / "k.jpg", policy)
    assert result.content_type == "image/jpeg"


def test_download__gzip_encoded_body_is_decoded(session, policy, tmp_path: Path) -> None:
    result = download_to_file(session, "https://files.example.com/gzip.pdf", tmp_path / "g.pdf", policy)
    assert (tmp_path / "g.pdf").read_bytes() == PDF and result.sha256 == hashlib.sha256(PDF).hexdigest()


def test_download__overwrites_existing_destination(session, policy, tmp_path: Path) -> None:
    dest = tmp_path / "again.pdf"
    dest.write_bytes(b"old")
    download_to_file(session, "https://files.example.com/ok.pdf", dest, policy)
    assert dest.read_bytes() == PDF


# --- content checks -------------------------------------------------------------------------------


def test_download__content_type_mismatch_is_permanent(session, policy, tmp_path: Path) -> None:
    err = _fail(session, "https://files.example.com/mismatch.pdf", tmp_path, policy, ErrorCategory.PERMANENT)
    assert str(err) == "Content-Type validation failed: 'image/jpeg' does not match extension 'pdf'"


def test_download__disallowed_content_type_is_permanent(session, policy, tmp_path: Path) -> None:
    err = _fail(session, "https://files.example.com/html.htm", tmp_path, policy, ErrorCategory.PERMANENT)
    assert "'text/html' is not an allowed type" in str(err)


def test_download__content_length_over_limit_is_permanent(session, policy, tmp_path: Path) -> None:
    err = _fail(
        session,
        "https://files.example.com/big.pdf",
        tmp_path,
        _with(policy, max_bytes=1000),
        ErrorCategory.PERMANENT,
    )
    assert str(err) == "File too large: 5000 bytes (limit 1000)"


def test_download__chunked_body_over_limit_is_permanent(session, policy, tmp_path: Path) -> None:
    err = _fail(
        session,
        "https://files.example.com/chunked-big.pdf",
        tmp_path,
        _with(policy, max_bytes=10_000, chunk_bytes=4096),
        ErrorCategory.PERMANENT,
    )
    assert str(err) == "File too large: more than 10000 bytes"


def test_download__gzip_bomb_stops_at_limit(session, policy, tmp_path: Path) -> None:
    err = _fail(
        session,
        "https://files.example.com/gzip-bomb.pdf",
        tmp_path,
        _with(policy, max_bytes=1_000_000, chunk_bytes=65536),
        ErrorCategory.PERMANENT,
    )
    assert str(err) == "File too large: more than 1000000 bytes"


def test_download__unknown_content_encoding_is_permanent(session, policy, tmp_path: Path) -> None:
    err = _fail(session, "https://files.example.com/brotli.pdf", tmp_path, policy, ErrorCategory.PERMANENT)
    assert str(err) == "Unsupported Content-Encoding: br"


def test_download__truncated_body_is_transient(session, policy, tmp_path: Path) -> None:
    err = _fail(session, "https://files.example.com/truncated.pdf", tmp_path, policy, ErrorCategory.TRANSIENT)
    assert str(err).startswith("Connection error: ")


# --- status codes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, category",
    [
        (404, ErrorCategory.PERMANENT),
        (403, ErrorCategory.PERMANENT),
        (410, ErrorCategory.PERMANENT),
        (500, ErrorCategory.TRANSIENT),
        (502, ErrorCategory.TRANSIENT),
        (503, ErrorCategory.TRANSIENT),
        (401, ErrorCategory.AUTH),
        (204, ErrorCategory.UNKNOWN),
    ],
)
def test_download__http_status_is_classified(
    session, policy, tmp_path: Path, code: int, category: ErrorCategory
) -> None:
    err = _fail(session, f"https://files.example.com/status/{code}.pdf", tmp_path, policy, category)
    assert str(err) == f"HTTP {code}" and err.http_status == code


def test_download__429_is_transient_with_retry_after(session, policy, tmp_path: Path) -> None:
    err = _fail(
        session, "https://files.example.com/status/429.pdf", tmp_path, policy, ErrorCategory.TRANSIENT
    )
    assert (str(err), err.http_status, err.retry_after_seconds) == ("HTTP 429", 429, 42.0)


# --- redirects ------------------------------------------------------------------------------------


def test_download__redirect_to_allowed_host_is_followed(server, session, policy, tmp_path: Path) -> None:
    result = download_to_file(session, "https://files.example.com/to-allowed.pdf", tmp_path / "r.pdf", policy)
    assert result.bytes_downloaded == len(PDF)
    assert "claimx-media.s3.example.com/ok.pdf" in server.hits


def test_download__relative_redirect_resolves_against_original_url(server, session, policy, tmp_path) -> None:
    result = download_to_file(
        session,
        "https://files.example.com/to-relative/x.pdf",
        tmp_path / "r.pdf",
        _with(policy, max_redirects=1),
    )
    assert result.bytes_downloaded == len(PDF)


@pytest.mark.parametrize(
    "route, reason",
    [
        ("to-untrusted", "Domain not in allowlist: untrusted.example.net"),
        ("to-http", "Must be HTTPS, got http"),
        ("to-simulator", "Must be HTTPS, got http"),
        ("to-metadata", "Private or loopback address: 169.254.169.254"),
    ],
)
def test_download__redirect_to_disallowed_target_is_permanent(
    session, policy, tmp_path: Path, route: str, reason: str
) -> None:
    err = _fail(session, f"https://files.example.com/{route}.pdf", tmp_path, policy, ErrorCategory.PERMANENT)
    assert str(err) == f"Redirect blocked: {reason}"


def test_download__redirect_without_location_is_permanent(session, policy, tmp_path: Path) -> None:
    err = _fail(
        session, "https://files.example.com/no-location.pdf", tmp_path, policy, ErrorCategory.PERMANENT
    )
    assert str(err) == "Redirect blocked: HTTP 302 without Location"


def test_download__redirect_loop_stops_after_five_hops(server, session, policy, tmp_path: Path) -> None:
    before = len(server.hits)
    err = _fail(session, "https://files.example.com/loop.pdf", tmp_path, policy, ErrorCategory.PERMANENT)
    assert str(err) == "Redirect blocked: more than 5 redirects"
    assert len(server.hits) - before == 6  # the first request plus five followed hops


def test_download__five_redirects_allowed_six_not(session, policy, tmp_path: Path) -> None:
    download_to_file(session, "https://files.example.com/chain/5.pdf", tmp_path / "five.pdf", policy)
    _fail(session, "https://files.example.com/chain/6.pdf", tmp_path, policy, ErrorCategory.PERMANENT)


def test_download__redirects_off_makes_302_an_auth_failure(session, policy, tmp_path: Path) -> None:
    err = _fail(
        session,
        "https://files.example.com/to-allowed.pdf",
        tmp_path,
        _with(policy, max_redirects=0),
        ErrorCategory.AUTH,
    )
    assert str(err) == "HTTP 302"


# --- time and connection failures ------------------------------------------------------------------


def test_download__slow_server_times_out_transient(session, policy, tmp_path: Path) -> None:
    started = time.monotonic()
    err = _fail(
        session,
        "https://files.example.com/slow.pdf",
        tmp_path,
        _with(policy, timeout_seconds=1, read_timeout_seconds=0.5),
        ErrorCategory.TRANSIENT,
    )
    assert str(err) == "Download timeout after 1s"
    assert time.monotonic() - started < 2.5


def test_download__dripping_body_hits_total_deadline(session, policy, tmp_path: Path) -> None:
    """Each byte arrives well within the read timeout; the total deadline still stops the transfer."""
    started = time.monotonic()
    err = _fail(
        session,
        "https://files.example.com/drip.pdf",
        tmp_path,
        _with(policy, timeout_seconds=1, read_timeout_seconds=2),
        ErrorCategory.TRANSIENT,
    )
    assert str(err) == "Download timeout after 1s"
    assert time.monotonic() - started < 2.5


def test_download__refused_connection_is_transient_and_sanitised(session, policy, tmp_path: Path) -> None:
    url_policy = UrlPolicy(
        ALLOWED, dev_simulator_url=f"http://127.0.0.1:{_closed_port()}", dev_simulator_hosts=ALLOWED
    )
    err = _fail(
        session,
        "https://files.example.com/ok.pdf?X-Amz-Signature=topsecret&sign=alsosecret",
        tmp_path,
        _with(policy, url_policy=url_policy),
        ErrorCategory.TRANSIENT,
    )
    assert str(err).startswith("Connection error: ")
    assert "topsecret" not in str(err) and "alsosecret" not in str(err)
    assert err.__cause__ is None and err.__suppress_context__


def test_download__unwritable_destination_is_transient_write_error(session, policy, tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a directory should be")
    with pytest.raises(PipelineError) as info:
        download_to_file(session, "https://files.example.com/ok.pdf", tmp_path / "blocker" / "x.pdf", policy)
    assert info.value.category is ErrorCategory.TRANSIENT
    assert str(info.value).startswith("File write error: ")


# --- memory ---------------------------------------------------------------------------------------

_MEMORY_PROBE = """
import json, resource, sys
from pathlib import Path
from core.download import DownloadPolicy, download_to_file, new_session
from core.security.urls import UrlPolicy
base, dest, mib = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
hosts = ("files.example.com",)
policy = DownloadPolicy(UrlPolicy(hosts, dev_simulator_url=base, dev_simulator_hosts=hosts),
                        max_bytes=200 * 1024 * 1024, timeout_seconds=120, read_timeout_seconds=30)
session = new_session()
download_to_file(session, "https://files.example.com/large/1.pdf", dest, policy)  # warm up imports/pools
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = download_to_file(session, f"https://files.example.com/large/{mib}.pdf", dest, policy)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_kib": after - before, "bytes": result.bytes_downloaded}))
"""


def test_download__memory_does_not_grow_with_file_size(server, tmp_path: Path) -> None:
    """A 50 MiB body streams through a separate process whose peak RSS grows by far less than 50 MiB."""
    base = f"http://127.0.0.1:{server.server_address[1]}"
    dest = tmp_path / "large.pdf"
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, base, str(dest), "50"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["bytes"] == 50 * 1024 * 1024 == dest.stat().st_size
    assert report["growth_kib"] < 16 * 1024, report


def _closed_port() -> int:
    """A 127.0.0.1 port that was just bound and released, so nothing listens on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
