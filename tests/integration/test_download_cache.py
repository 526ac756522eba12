"""Download cache and upload integrity through the real stage functions (issue 7 items 8 and 11).

``tasks.download.fetch`` and ``tasks.upload.put`` run against a real HTTP server on 127.0.0.1
(reached through the DEV routing, as in ``make run``), the real Redis (URL vault; unique media ids)
and a local file store in a temporary lake. Nothing is mocked.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from core.errors import PermanentError
from core.settings import load_settings
from domains.attachments import AttachmentJob
from domains.names import Domain
from tasks.download import fetch
from tasks.runtime import Runtime
from tasks.upload import put
from tests.fakes.http import serving
from writers.files.verified import disambiguated

pytestmark = pytest.mark.integration

HOST = "files.example.com"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b"%PDF-1.4\n" + self.path.encode() * 50  # each path serves its own bytes
        self.send_response(200)
        self.send_header("Content-Type", "application/pdf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving(_Handler) as httpd:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"


@pytest.fixture
def rt(server: str, tmp_path: Path) -> Iterator[Runtime]:
    settings = load_settings(
        cache_dir=tmp_path / "cache",
        lake_dir=tmp_path / "lake",
        file_store="local",
        allowed_attachment_domains=HOST,
        dev_simulator_url=server,
        dev_simulator_hosts=HOST,
    )
    runtime = Runtime(settings)
    yield runtime
    runtime.http.close()


def _job(rt: Runtime, blob_path: str, url_path: str) -> AttachmentJob:
    job = AttachmentJob(
        domain=Domain.XACT,
        media_id=f"test-cache-{uuid.uuid4().hex}",
        event_id="e-1",
        url_display=f"https://{HOST}/{url_path}",
        blob_path=blob_path,
        file_name=blob_path.rsplit("/", 1)[-1],
        file_type="PDF",
        check_expiry=False,
    )
    rt.vault.put(job.vault_key(), f"https://{HOST}/{url_path}")
    return job


def _lake(rt: Runtime, blob_path: str) -> Path:
    return rt.settings.files_root / "xact" / blob_path


def test_name_at_the_255_byte_cap_downloads_and_uploads(rt: Runtime) -> None:
    """Before: the cache file was ``name + '.part'`` (259 bytes), ENAMETOOLONG, retried for an hour."""
    name = "Inspection_" + "n" * 240 + ".pdf"
    assert len(name.encode()) == 255
    job = _job(rt, f"documentsReceived/A-1/trace/{name}", "long.pdf")
    downloaded = fetch(rt, job, "run-1")
    local = Path(downloaded.local_path or "")
    assert local.is_file() and local.is_relative_to(rt.settings.cache_dir.resolve())
    assert name not in str(local) and len(local.name) <= 16
    stored = put(rt, downloaded)
    assert _lake(rt, job.blob_path).read_bytes() == b"%PDF-1.4\n" + b"/files.example.com/long.pdf" * 50
    assert stored.blob_path == job.blob_path and stored.local_path is None and not local.exists()


def test_two_attachments_with_one_sanitised_path_keep_their_own_bytes(rt: Runtime) -> None:
    """``a?b.pdf`` and ``a*b.pdf`` both sanitise to ``a_b.pdf``: the second must not overwrite the first."""
    blob = "documentsReceived/A-2/trace/a_b.pdf"
    first, second = _job(rt, blob, "first.pdf"), _job(rt, blob, "second.pdf")
    done_first = put(rt, fetch(rt, first, "run-a"))
    done_second = put(rt, fetch(rt, second, "run-b"))

    assert done_first.blob_path == blob
    assert done_second.blob_path == disambiguated(blob, second.vault_key()) != blob
    assert _lake(rt, blob).read_bytes().endswith(b"first.pdf")
    assert _lake(rt, done_second.blob_path).read_bytes().endswith(b"second.pdf")
    for done in (done_first, done_second):
        assert hashlib.sha256(_lake(rt, done.blob_path).read_bytes()).hexdigest() == done.sha256

    again = put(rt, fetch(rt, second, "run-c"))  # a replay of the second: already stored, same place
    assert again.blob_path == done_second.blob_path
    assert _lake(rt, blob).read_bytes().endswith(b"first.pdf")


def test_missing_cache_file_counts_as_stored_only_when_the_blob_hash_matches(rt: Runtime) -> None:
    blob = "documentsReceived/A-3/trace/report.pdf"
    other = _job(rt, blob, "other.pdf")
    put(rt, fetch(rt, other, "run-o"))  # another attachment's bytes at the same path
    mine = fetch(rt, _job(rt, blob, "mine.pdf"), "run-m")
    Path(mine.local_path or "").unlink()  # as if a first upload run had stored it and died
    with pytest.raises(PermanentError, match="Cached file missing"):
        put(rt, mine)

    stored = put(rt, fetch(rt, _job(rt, "documentsReceived/A-3/trace/own.pdf", "own.pdf"), "run-x"))
    redelivered = stored.model_copy(update={"local_path": f"{rt.settings.cache_dir}/xact/gone/file"})
    assert put(rt, redelivered).blob_path == stored.blob_path  # same hash: already stored


def test_a_cached_file_changed_after_download_is_refused(rt: Runtime) -> None:
    job = fetch(rt, _job(rt, "documentsReceived/A-4/trace/x.pdf", "x.pdf"), "run-t")
    Path(job.local_path or "").write_bytes(b"%PDF-1.4\nswapped")
    with pytest.raises(PermanentError, match="sha256 mismatch"):
        put(rt, job)
    assert not _lake(rt, job.blob_path).exists()


def test_a_local_path_outside_the_cache_is_refused(rt: Runtime, tmp_path: Path) -> None:
    secret = tmp_path / "not-in-cache.pdf"
    secret.write_bytes(b"%PDF-1.4\nprivate")
    job = fetch(rt, _job(rt, "documentsReceived/A-5/trace/y.pdf", "y.pdf"), "run-y")
    forged = job.model_copy(
        update={"local_path": str(secret), "sha256": hashlib.sha256(secret.read_bytes()).hexdigest()}
    )
    with pytest.raises(PermanentError, match="outside CACHE_DIR"):
        put(rt, forged)
    assert not _lake(rt, job.blob_path).exists()
