"""Hostile attachment URLs through the whole pipeline: every one ends with a recorded outcome
(``xact_attachments_failed`` row, and a dead letter when it failed at download), nothing escapes
the lake folder, and the workers keep serving valid work."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from core.deadletters import DeadLetterStore
from domains.ids import xact_media_id
from domains.names import Table
from tests.harness import Harness, documents_received, lines_run

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

TRACE = "9a9a9a9a-0000-4000-8000-000000000001"
GOOD = "https://files.example.com/docs/good.pdf"
REJECTED_AT_DISPATCH = {
    "https://127.0.0.1/exports/a.pdf": "Private or loopback address",
    "https://169.254.169.254/latest/meta-data.pdf": "Private or loopback address",
    "https://10.1.2.3/exports/a.pdf": "Private or loopback address",
    "https://[::1]/exports/a.pdf": "Private or loopback address",
    "http://files.example.com/docs/plain.pdf": "Must be HTTPS",
    "ftp://files.example.com/docs/a.pdf": "",
    "https://evil.example.net/docs/a.pdf": "Domain not in allowlist",
    "https://files.example.com.evil.example.net/a.pdf": "Domain not in allowlist",
}
FAILED_AT_DOWNLOAD = {
    "https://files.example.com/redirect?to="
    + quote("https://untrusted.example.net/x.pdf", safe="")
    + "&filename=x.pdf": "Redirect blocked",
    "https://files.example.com/redirect-loop/1.pdf": "redirect",
    "https://files.example.com/docs/tool.exe": "not allowed",
    "https://files.example.com/synthetic/1/300000/too_big.pdf": "too large",
    "https://files.example.com/docs/estimate.esx": "Content-Type",
}
TRAVERSAL = "https://files.example.com/docs/..%2F..%2F..%2Fetc%2Fpasswd.pdf"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Harness:
    line = documents_received(
        TRACE,
        "../../A-1",
        [GOOD, TRAVERSAL, *REJECTED_AT_DISPATCH, *FAILED_AT_DOWNLOAD],
        at="2026-01-06T10:00:00Z",
    )
    with lines_run(
        tmp_path_factory.mktemp("hostile"), "xact", [line], extra_env={"MAX_DOWNLOAD_BYTES": "200000"}
    ) as harness:
        yield harness


def _failed(run: Harness) -> dict[str, dict]:
    return {r["media_id"]: r for r in run.table(Table.XACT_ATTACHMENTS_FAILED).to_dicts()}


def test_refused_urls__recorded_as_rejected_with_the_reason(run: Harness) -> None:
    failed = _failed(run)
    for url, reason in REJECTED_AT_DISPATCH.items():
        row = failed[xact_media_id(TRACE, url)]
        assert row["status"] == "rejected", url
        assert reason in row["error_message"], (url, row["error_message"])


def test_download_failures__recorded_and_dead_lettered_as_permanent(run: Harness) -> None:
    failed = _failed(run)
    letters = {letter.key: letter for letter in DeadLetterStore(run.redis).list("xact")}
    for url, reason in FAILED_AT_DOWNLOAD.items():
        media_id = xact_media_id(TRACE, url)
        assert failed[media_id]["status"] == "failed_permanent", url
        assert reason.lower() in failed[media_id]["error_message"].lower(), (
            url,
            failed[media_id]["error_message"],
        )
        assert letters[media_id].category == "permanent"


def test_traversal_names_and_ids__stay_inside_the_domain_folder(run: Harness) -> None:
    root = run.settings.files_root
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files, "the valid attachments were stored"
    for path in files:
        assert path.resolve().is_relative_to((root / "xact").resolve())
    assert not (run.tmp / "etc").exists()
    stored = run.table(Table.XACT_ATTACHMENTS)
    paths = stored["blob_path"].to_list()
    assert all(".." not in p.split("/") for p in paths)
    assert xact_media_id(TRACE, GOOD) in stored["media_id"].to_list()
    assert xact_media_id(TRACE, TRAVERSAL) in stored["media_id"].to_list()  # sanitised, then stored


def test_every_attachment_has_exactly_one_outcome_and_workers_survived(run: Harness) -> None:
    urls = [GOOD, TRAVERSAL, *REJECTED_AT_DISPATCH, *FAILED_AT_DOWNLOAD]
    done = set(run.table(Table.XACT_ATTACHMENTS)["media_id"].to_list())
    failed = set(_failed(run))
    ids = {xact_media_id(TRACE, u) for u in urls}
    assert done | failed == ids and not (done & failed)
    assert all(proc.poll() is None for proc in run.procs.values())
