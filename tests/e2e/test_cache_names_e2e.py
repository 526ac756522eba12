"""Long and colliding attachment names through the whole pipeline (issue 7 items 8 and 11).

One xact event with three attachments: a name at the 255-byte cap (it used to become
``name.part`` in the cache: ENAMETOOLONG, retried, dead-lettered with a local path in its failed
row) and two names that sanitise to one blob path (``a?b.pdf``, ``a*b.pdf``: the second used to
overwrite the first). Real Kafka, Redis, workers, simulator and Delta.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from core.deadletters import DeadLetterStore
from domains.ids import xact_media_id
from domains.names import Table
from simulator.files import expected_bytes
from tests.harness import Harness, documents_received, lines_run

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

TRACE = "7c7c7c7c-0000-4000-8000-00000000cafe"
LONG = "https://files.example.com/docs/" + "n" * 300 + ".pdf"
QUESTION = "https://files.example.com/docs/a%3Fb.pdf"
STAR = "https://files.example.com/docs/a%2Ab.pdf"
URLS = [LONG, QUESTION, STAR]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    line = documents_received(TRACE, "A-77", URLS, at="2026-01-07T10:00:00Z")
    with lines_run(tmp_path_factory.mktemp("cache-names"), "xact", [line]) as harness:
        yield harness


def test_every_attachment_is_stored_with_its_own_bytes(run: Harness) -> None:
    rows = {r["media_id"]: r for r in run.table(Table.XACT_ATTACHMENTS).to_dicts()}
    paths = set()
    for url in URLS:
        row = rows.get(xact_media_id(TRACE, url))
        assert row is not None, f"{url[:60]} was not stored"
        data = run.lake_file("xact", row["blob_path"]).read_bytes()
        assert data == expected_bytes(url.split("://", 1)[1]), url[:60]
        paths.add(row["blob_path"])
    assert len(paths) == 3  # the two colliding names did not share a blob
    long_name = rows[xact_media_id(TRACE, LONG)]["blob_path"].rsplit("/", 1)[-1]
    assert len(long_name.encode()) == 255


def test_no_failure_no_letter_and_no_local_path_anywhere(run: Harness) -> None:
    assert run.table(Table.XACT_ATTACHMENTS_FAILED).to_dicts() == []
    assert DeadLetterStore(run.redis).list("xact") == []
    cache = str(run.settings.cache_dir)
    for row in run.table(Table.XACT_ATTACHMENTS).to_dicts():
        assert cache not in json.dumps(row, default=str)


def test_the_cache_is_private_and_drained(run: Harness) -> None:
    cache = run.settings.cache_dir
    assert (cache.stat().st_mode & 0o777) == 0o700
    assert [p for p in cache.rglob("*") if p.is_file()] == []
