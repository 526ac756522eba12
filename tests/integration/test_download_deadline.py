"""The download deadline scales with the size (issue 9): base + bytes / minimum rate, capped.

A local HTTP server trickles a body at a chosen rate (reached through the DEV rewrite, like
``test_download.py``); the real downloader fetches it. A healthy slow link finishes although it
takes longer than the base timeout; a link below the minimum rate fails at its budget; a stalled
link fails after the read timeout, not after the (large) budget.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from core.download import DownloadPolicy, download_to_file, new_session
from core.errors import TransientError
from core.security.urls import UrlPolicy
from core.settings import load_settings
from tests.fakes.http import serving

pytestmark = pytest.mark.integration

HOST = "files.example.com"


class _Trickle(BaseHTTPRequestHandler):
    """``/files.example.com/<total>/<bytes per second>/<head>/<stall>/<framing>.pdf``: ``head`` bytes at
    once, the rest at the rate; after ``stall`` bytes (0: never) it goes silent. ``framing`` is
    ``length`` (Content-Length) or ``chunked``."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # http.server's naming
        _, total, rate, head, stall, name = self.path.lstrip("/").split("/")
        total_n, rate_n, head_n, stall_n = int(total), float(rate), int(head), int(stall)
        chunked = name.startswith("chunked")
        self.send_response(200)
        self.send_header("Content-Type", "application/pdf")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(total_n))
        self.end_headers()
        sent, step = 0, max(1, int(rate_n / 20))  # 20 writes a second
        try:
            while sent < total_n:
                if stall_n and sent >= stall_n:
                    time.sleep(30)  # silent: the client's read timeout ends this
                    return
                size = head_n if sent == 0 and head_n else min(step, total_n - sent)
                self._write(b"t" * size, chunked)
                sent += size
                if sent > head_n:
                    time.sleep(size / rate_n)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client gave up on purpose

    def _write(self, data: bytes, chunked: bool) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data)
        self.wfile.flush()


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadingHTTPServer]:
    with serving(_Trickle, "trickle-server") as httpd:
        yield httpd


@pytest.fixture
def session() -> Iterator[requests.Session]:
    s = new_session(pool_size=2)
    yield s
    s.close()


def _policy(server: ThreadingHTTPServer, **knobs: float) -> DownloadPolicy:
    url_policy = UrlPolicy(
        allowed_hosts=(HOST,),
        dev_simulator_url=f"http://127.0.0.1:{server.server_address[1]}",
        dev_simulator_hosts=(HOST,),
    )
    return DownloadPolicy(
        url_policy=url_policy,
        max_bytes=50_000_000,
        timeout_seconds=knobs.pop("timeout_seconds", 0.5),
        read_timeout_seconds=knobs.pop("read_timeout_seconds", 0.5),
        min_bytes_per_second=knobs.pop("min_bytes_per_second", 0.0),
        max_timeout_seconds=knobs.pop("max_timeout_seconds", None),
    )


def _url(total: int, rate: float, head: int = 0, stall: int = 0, framing: str = "length") -> str:
    return f"https://{HOST}/{total}/{rate:g}/{head}/{stall}/{framing}.pdf"


def test_healthy_slow_link__finishes_past_the_base_timeout(server, session, tmp_path: Path) -> None:
    """120 kB at 80 kB/s takes 1.5 s: three times the 0.5 s base, within 0.5 + 120k/40k = 3.5 s."""
    policy = _policy(server, min_bytes_per_second=40_000, max_timeout_seconds=60)
    started = time.monotonic()
    result = download_to_file(session, _url(120_000, 80_000), tmp_path / "a" / "file", policy)
    assert result.bytes_downloaded == 120_000
    assert time.monotonic() - started > policy.timeout_seconds  # really outlived the base timeout


def test_healthy_slow_link_without_length__budget_grows_with_the_bytes(
    server, session, tmp_path: Path
) -> None:
    policy = _policy(server, min_bytes_per_second=40_000, max_timeout_seconds=60)
    result = download_to_file(
        session, _url(120_000, 80_000, framing="chunked"), tmp_path / "b" / "file", policy
    )
    assert result.bytes_downloaded == 120_000


def test_link_below_the_minimum_rate__fails_at_its_budget(server, session, tmp_path: Path) -> None:
    """200 kB at 20 kB/s would take 10 s; the budget at 100 kB/s is 0.5 + 2 = 2.5 s."""
    policy = _policy(server, min_bytes_per_second=100_000, max_timeout_seconds=60)
    started = time.monotonic()
    with pytest.raises(TransientError, match=r"Download timeout after 2.5s"):
        download_to_file(session, _url(200_000, 20_000), tmp_path / "c" / "file", policy)
    assert 2.4 < time.monotonic() - started < 4.0
    assert not list(tmp_path.rglob("*.part"))


def test_stalled_link__fails_after_the_read_timeout_not_the_budget(server, session, tmp_path: Path) -> None:
    """10 MB with a budget of minutes; the server stops after 1 MB: the read timeout (0.5 s) ends it."""
    policy = _policy(server, min_bytes_per_second=100_000, max_timeout_seconds=600)
    started = time.monotonic()
    with pytest.raises(TransientError, match="Download timeout"):
        download_to_file(
            session, _url(10_000_000, 1e9, head=1_000_000, stall=1_000_000), tmp_path / "d" / "file", policy
        )
    assert time.monotonic() - started < 2.0


def test_ceiling__caps_the_budget(server, session, tmp_path: Path) -> None:
    policy = _policy(server, min_bytes_per_second=1_000, max_timeout_seconds=1.0, read_timeout_seconds=2)
    started = time.monotonic()
    with pytest.raises(TransientError, match=r"Download timeout after 1s"):
        download_to_file(session, _url(200_000, 20_000), tmp_path / "e" / "file", policy)
    assert time.monotonic() - started < 2.5


def test_time_budget__from_settings() -> None:
    settings = load_settings(
        download_timeout_seconds=60, download_min_bytes_per_second=3_000_000, download_max_seconds=840
    )
    policy = DownloadPolicy.from_settings(settings, check_presigned_expiry=False)
    assert policy.time_budget(None) == policy.time_budget(0) == 60
    assert policy.time_budget(1024**3) == pytest.approx(60 + 1024**3 / 3_000_000)  # 1 GiB: ~418 s
    assert policy.time_budget(2 * 1024**3) == pytest.approx(60 + 2 * 1024**3 / 3_000_000)  # 2 GiB fits
    assert policy.time_budget(50 * 1024**3) == 840  # the ceiling
    short_tasks = load_settings(task_time_limit_seconds=300, visibility_timeout_seconds=10_000)
    assert DownloadPolicy.from_settings(short_tasks, check_presigned_expiry=False).time_budget(10**12) == 260
    fixed = load_settings(download_min_bytes_per_second=0)
    assert DownloadPolicy.from_settings(fixed, check_presigned_expiry=False).time_budget(10**9) == 60
