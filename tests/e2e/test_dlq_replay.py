"""A dead letter is replayable: after the cause is fixed, ``pipeline dlq replay`` re-runs the
original work with its original ids and the attachment lands; nothing runs twice."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from core.deadletters import DeadLetterStore, LetterStatus
from domains.ids import xact_media_id
from domains.names import Table
from simulator.files import expected_bytes
from tests.harness import Harness

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

TRACE = "7b7b7b7b-0000-4000-8000-000000000001"
URL = "https://files.example.com/replay/contract.pdf"
PATH = "/files.example.com/replay/contract.pdf"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    harness = Harness(tmp_path_factory.mktemp("replay"))
    harness.start_all()
    try:
        yield harness
    finally:
        harness.stop_all()


def test_dead_letter__replayed_after_the_fault_is_fixed__file_lands_once(run: Harness) -> None:
    run.sim("POST", "/_sim/faults", {"rule": {"path_prefix": PATH, "status": 404}})
    event = {
        "type": "verisk.claims.property.xn.documentsReceived",
        "version": 1,
        "utcDateTime": "2026-01-07T09:00:00Z",
        "traceId": TRACE,
        "data": {"assignmentId": "A-9001", "attachments": [URL]},
    }
    run.publish_lines("xact", [json.dumps(event).encode()])
    run.wait_idle(timeout=120)
    media_id = xact_media_id(TRACE, URL)
    letters = DeadLetterStore(run.redis).list("xact")
    assert [(x.key, x.category, x.stage) for x in letters] == [(media_id, "permanent", "download")]
    assert "HTTP 404" in run.pipeline("dlq", "list", "--domain", "xact")
    failed = run.table(Table.XACT_ATTACHMENTS_FAILED).to_dicts()
    assert [(r["media_id"], r["status"]) for r in failed] == [(media_id, "failed_permanent")]
    # The open letter keeps the URL its replay needs: the vault entry no longer expires.
    vault_entry = f"pipeline:url:xact:{media_id}"
    assert letters[0].holds == [vault_entry] and run.redis.ttl(vault_entry) == -1

    # The same work again (a re-dispatch after the ledger forgot it) updates the same letter.
    for key in run.redis.scan_iter(match="pipeline:dispatched:*"):
        run.redis.delete(key)
    run.publish_lines("xact", [json.dumps(event).encode()])
    run.wait_idle(timeout=120)
    again = DeadLetterStore(run.redis).list("xact", status=None)
    assert [(x.id, x.failures, x.status) for x in again] == [(letters[0].id, 2, "open")]
    assert run.redis.ttl(vault_entry) == -1

    run.sim("DELETE", "/_sim/faults")
    assert "replayed 1" in run.pipeline("dlq", "replay", "--all", "--domain", "xact")
    run.wait_idle(timeout=120)

    stored = run.table(Table.XACT_ATTACHMENTS).to_dicts()
    assert [(r["media_id"], r["attachment_url"]) for r in stored] == [(media_id, URL)]
    assert run.lake_file("xact", stored[0]["blob_path"]).read_bytes() == expected_bytes(URL)
    failed = run.table(Table.XACT_ATTACHMENTS_FAILED).to_dicts()
    assert [(r["media_id"], r["status"], r["attachment_url"]) for r in failed] == [
        (media_id, "recovered", URL)
    ]
    assert DeadLetterStore(run.redis).get(letters[0].id).status == LetterStatus.REPLAYED
    assert DeadLetterStore(run.redis).list("xact") == []  # no open letter left
    assert not run.redis.exists(vault_entry)  # the successful replay used it up

    # Replaying again is a no-op: the attachment is done.
    run.pipeline("dlq", "replay", letters[0].id)
    run.wait_idle(timeout=60)
    assert run.table(Table.XACT_ATTACHMENTS).height == 1
    assert run.counters("xact").get("download_skipped_done", 0) >= 1
