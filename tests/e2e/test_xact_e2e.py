"""xact end to end: the sample events through Kafka, Celery, the simulator and Delta.

Expected outcomes come from ``samples/expected/xact_expectations.json`` with the DECISIONS
overrides (line 16 named after its ``filename`` parameter, line 18 decoded, rejected URLs kept in
``xact_attachments_failed``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import polars as pl
import pytest
from confluent_kafka import Consumer, TopicPartition

from core.deadletters import DeadLetterStore
from domains.ids import xact_event_id, xact_media_id
from domains.names import Table
from domains.xact.flatten import flatten_event
from domains.xact.models import parse_xact_record
from ops.expectations import XACT_OVERRIDES, compare_values, xact_values
from simulator.files import expected_bytes
from tests.harness import KAFKA, Harness, sample_run
from tests.samples import SAMPLES

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

OVERRIDES = XACT_OVERRIDES  # DECISIONS "How to read the samples' expected outcomes"


def _expected() -> dict[str, list]:
    spec = json.loads((SAMPLES / "expected" / "xact_expectations.json").read_text())
    out: dict[str, list] = {"completed": [], "failed": [], "rejected": [], "events": []}
    for event in spec["events"]:
        if event["outcome"] in ("parse_error", "duplicate_skipped"):
            continue
        out["events"].append(event["trace_id"])
        for att in event.get("attachments", []):
            media_id = xact_media_id(event["trace_id"], att["attachment_url"])
            blob_path, file_type = OVERRIDES.get(event["line"], (att.get("blob_path"), att.get("file_type")))
            if att["ingest"] == "rejected":  # DECISIONS: https only, no localhost exception
                out["rejected"].append((media_id, att["reason"].replace(" for non-localhost", "")))
            elif att["download"].startswith("completed (when"):
                out["completed"].append((media_id, att["attachment_url"], blob_path, file_type))
            else:
                out["failed"].append((media_id, blob_path))
        if event["outcome"] == "missing_assignment_id":
            out["rejected"].append(("missing-assignment", event["trace_id"]))
    return out


EXPECTED = _expected()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with sample_run(
        tmp_path_factory.mktemp("xact-e2e"), "xact", SAMPLES / "xact_events.jsonl", 20
    ) as harness:
        yield harness


def test_xact_events__one_exact_row_per_unique_event(run: Harness) -> None:
    """18 rows: the duplicate line and the malformed line add none; every column as flattened."""
    table = run.table(Table.XACT_EVENTS)
    assert sorted(table["trace_id"].to_list()) == sorted(EXPECTED["events"])
    raw_rows = {}
    for line in (SAMPLES / "xact_events.jsonl").read_bytes().splitlines():
        try:
            event = parse_xact_record(line)
        except Exception:  # noqa: BLE001 - the malformed line
            continue
        raw_rows[event.trace_id] = (event, json.loads(line))
    now = datetime.now(UTC)
    for row in table.to_dicts():
        event, raw = raw_rows[row["trace_id"]]
        expected = flatten_event(event, raw, event_id=xact_event_id(event.trace_id), now=now)
        for column, value in expected.items():
            if column in ("created_at", "created_date", "ingested_at", "event_date"):
                continue
            assert row[column] == value, (row["trace_id"], column)
        assert row["ingested_at"] == event.event_time
        assert row["event_date"] == event.event_time.date()


def test_xact_attachments__exact_rows_and_exact_bytes_in_the_lake(run: Harness) -> None:
    table = run.table(Table.XACT_ATTACHMENTS)
    rows = {r["media_id"]: r for r in table.to_dicts()}
    assert set(rows) == {m for m, *_ in EXPECTED["completed"]}
    for media_id, url, blob_path, file_type in EXPECTED["completed"]:
        row = rows[media_id]
        body = expected_bytes(url)
        assert (row["blob_path"], row["file_type"], row["attachment_url"]) == (blob_path, file_type, url)
        assert row["bytes_downloaded"] == len(body)
        assert run.lake_file("xact", blob_path).read_bytes() == body
    assert set(run.lake_files("xact")) == {b for _m, _u, b, _t in EXPECTED["completed"]}


def test_xact_attachments_failed__every_refused_attachment_has_an_outcome(run: Harness) -> None:
    failed = {r["media_id"]: r for r in run.table(Table.XACT_ATTACHMENTS_FAILED).to_dicts()}
    for media_id, _blob in EXPECTED["failed"]:
        assert failed[media_id]["status"] == "failed_permanent"
        assert failed[media_id]["error_category"] == "permanent"
    for media_id, reason in EXPECTED["rejected"]:
        if media_id == "missing-assignment":
            rows = [r for r in failed.values() if r["trace_id"] == reason]
            assert rows and all(r["status"] == "rejected" for r in rows)
            continue
        assert failed[media_id]["status"] == "rejected"
        assert reason in failed[media_id]["error_message"]
    messages = {r["media_id"]: r["error_message"] for r in failed.values()}
    by_blob = {b: m for m, b in EXPECTED["failed"]}
    assert "not allowed" in messages[by_blob[next(b for b in by_blob if b.endswith(".zip"))]]
    assert "No file extension" in messages[by_blob[next(b for b in by_blob if b.endswith("extension"))]]
    assert "expired" in messages[by_blob[next(b for b in by_blob if "contents_list" in b)]].lower()
    assert "Content-Type" in messages[by_blob[next(b for b in by_blob if b.endswith(".esx"))]]


def test_dead_letters__permanent_download_failures_are_replayable_letters(run: Harness) -> None:
    letters = DeadLetterStore(run.redis).list("xact")
    assert sorted(letter.key for letter in letters) == sorted(m for m, _ in EXPECTED["failed"])
    for letter in letters:
        assert letter.category == "permanent" and letter.stage == "download"
        assert "X-Amz-Signature=0b1c" not in json.dumps(letter.payload)  # no signature in letters


def test_malformed_record__lands_in_the_dead_letter_topic_with_the_error(run: Harness) -> None:
    consumer = Consumer(
        {"bootstrap.servers": KAFKA, "group.id": "dlq-reader", "auto.offset.reset": "earliest"}
    )
    topic = run.dlq_topics["xact"]
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    records = []
    for _ in range(10):
        records += [m for m in consumer.consume(10, timeout=1) if not m.error()]
        if records:
            break
    consumer.close()
    assert len(records) == 1
    headers = dict(records[0].headers())
    assert b"cut_off.pdf" in records[0].value()
    assert headers["error"]


def test_republishing__adds_no_row_and_no_file(run: Harness) -> None:
    before = {
        t: run.table(t).height
        for t in (Table.XACT_EVENTS, Table.XACT_ATTACHMENTS, Table.XACT_ATTACHMENTS_FAILED)
    }
    files_before = run.lake_files("xact")
    run.publish_file("xact", SAMPLES / "xact_events.jsonl")
    run.wait_idle(timeout=120)
    for table, height in before.items():
        frame = run.table(table)
        assert frame.height == height, table
        key = "trace_id" if table is Table.XACT_EVENTS else "media_id"
        assert frame[key].n_unique() == frame.height
    assert run.lake_files("xact") == files_before
    assert run.counters("xact")["duplicates_skipped"] >= 19
    pl.DataFrame()  # polars stays importable after Delta reads (no abort at exit)


def test_redelivery_after_the_ledger_forgot__stages_are_idempotent(run: Harness) -> None:
    """With the dispatch ledger emptied (as after its TTL), a full re-run still adds nothing."""
    before = {
        t: run.table(t).height
        for t in (Table.XACT_EVENTS, Table.XACT_ATTACHMENTS, Table.XACT_ATTACHMENTS_FAILED)
    }
    files_before = run.lake_files("xact")
    letters_before = {letter.id: letter.failures for letter in DeadLetterStore(run.redis).list("xact")}
    for key in run.redis.scan_iter(match="pipeline:dispatched:*"):
        run.redis.delete(key)
    run.publish_file("xact", SAMPLES / "xact_events.jsonl")
    run.wait_idle(timeout=120)
    for table, height in before.items():
        assert run.table(table).height == height, table
    assert run.lake_files("xact") == files_before
    # One letter per work item: the failing attachments failed again and updated their letters.
    letters_after = DeadLetterStore(run.redis).list("xact")
    assert {letter.id for letter in letters_after} == set(letters_before)
    assert all(letter.failures > letters_before[letter.id] for letter in letters_after)


def test_sample_expectations__every_column_value_they_give(run: Harness) -> None:
    """What ``make run`` compares besides row counts: blob paths, types, URLs, failed statuses."""
    lines = compare_values(
        xact_values(SAMPLES / "expected" / "xact_expectations.json"),
        lambda table: run.table(Table(table)).to_dicts(),
    )
    assert not [line for line in lines if not line.endswith(" OK")], "\n".join(lines)
