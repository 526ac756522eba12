"""The Eventhouse poller against a real local Kusto REST server and the real Kafka broker.

Every test creates its own single-partition topics, so the order on the topic is the publish order.
The poller is built exactly as ``pipeline poll`` builds it (``Poller.from_settings``): the real
``azure-kusto-data`` client over HTTP (static token from a token file) and a real producer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from core.errors import PermanentError, TransientError
from core.settings import Settings, load_settings
from dispatcher.kusto import EventhouseClient
from dispatcher.poll_query import Source
from dispatcher.poller import Backfill, KafkaSink, Poller
from domains.claimx.models import parse_claimx_record
from domains.names import Domain
from tests.fakes.kusto_server import KustoFake, iso, ticks

pytestmark = pytest.mark.integration

KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
ROOT = Path(__file__).resolve().parents[2]
XACT_COLUMNS = [
    ("type", "string"),
    ("version", "int"),
    ("utcDateTime", "datetime"),
    ("traceId", "string"),
    ("data", "dynamic"),
]
CLAIMX_COLUMNS = [("eventType", "string"), ("projectId", "string"), ("mediaId", "string")]


@pytest.fixture
def fake() -> Iterator[KustoFake]:
    with KustoFake() as server:
        server.add_table("Events", XACT_COLUMNS)
        server.add_table("ClaimXEvents", CLAIMX_COLUMNS)
        yield server


@pytest.fixture
def topics() -> Iterator[dict[Domain, str]]:
    tag = uuid.uuid4().hex[:8]
    names = {domain: f"poller-test-{tag}.{domain.value}.events.raw" for domain in Domain}
    admin = AdminClient({"bootstrap.servers": KAFKA})
    for future in admin.create_topics(
        [NewTopic(n, num_partitions=1, replication_factor=1) for n in names.values()]
    ).values():
        future.result(30)
    yield names
    for future in admin.delete_topics(list(names.values())).values():
        future.result(30)


@pytest.fixture
def env(fake: KustoFake, topics: dict[Domain, str], tmp_path: Path) -> dict[str, str]:
    """The poller's configuration as environment variables (also used for the CLI subprocess)."""
    token_file = tmp_path / "kusto.token"
    token_file.write_text(json.dumps({"https://kusto.kusto.windows.net": fake.token}))
    return {
        "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
        "XACT_EVENTS_TOPIC": topics[Domain.XACT],
        "CLAIMX_EVENTS_TOPIC": topics[Domain.CLAIMX],
        "XACT_EVENTHOUSE_CLUSTER_URL": fake.url,
        "XACT_EVENTHOUSE_DATABASE": fake.database,
        "XACT_EVENTHOUSE_TABLE": "Events",
        "CLAIMX_EVENTHOUSE_CLUSTER_URL": fake.url,
        "CLAIMX_EVENTHOUSE_DATABASE": fake.database,
        "CLAIMX_EVENTHOUSE_TABLE": "ClaimXEvents",
        "CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        "EVENTHOUSE_TOKEN_FILE": str(token_file),
        "POLL_BATCH_SIZE": "10",
        "POLL_INTERVAL_SECONDS": "0.2",
        "EVENTHOUSE_MAX_RETRIES": "2",
        "EVENTHOUSE_RETRY_BASE_DELAY_SECONDS": "0.01",
        "EVENTHOUSE_RETRY_MAX_DELAY_SECONDS": "0.05",
    }


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load_settings(**{name.lower(): value for name, value in env.items()})


def _xact_rows(count: int, prefix: str = "t") -> list[dict[str, Any]]:
    return [
        {
            "type": "verisk.claims.property.xn.documentsReceived",
            "version": 1,
            "utcDateTime": "2026-01-05T14:22:31.512Z",
            "traceId": f"{prefix}-{uuid.uuid4()}",
            "data": {"assignmentId": f"A-{i}", "attachments": []},
        }
        for i in range(count)
    ]


def _insert_each(fake: KustoFake, table: str, rows: list[dict[str, Any]], first: datetime) -> list[str]:
    """One ingestion per row, 1 s apart; returns the ingestion times (7-digit ISO) in order."""
    times = []
    for i, row in enumerate(rows):
        when = ticks(first + timedelta(seconds=i)) + 1234  # sub-microsecond digits, as Kusto has them
        fake.insert(table, [row], when)
        times.append(iso(when))
    return times


def _published(topic: str) -> list[tuple[bytes | None, dict[str, Any]]]:
    """Every record on the (single-partition) topic, in order: exactly up to the high watermark."""
    consumer = Consumer(
        {"bootstrap.servers": KAFKA, "group.id": f"poller-test-{uuid.uuid4()}", "enable.auto.commit": False}
    )
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, 0)])
        records: list[tuple[bytes | None, dict[str, Any]]] = []
        deadline = time.monotonic() + 30
        while len(records) < high and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                records.append((message.key(), json.loads(message.value())))
        assert len(records) == high
        return records
    finally:
        consumer.close()


def _drain(poller: Poller) -> list[int]:
    """poll_once until a short page; returns rows published per page."""
    published = []
    while True:
        result = poller.poll_once()
        published.append(result.published)
        if not result.more:
            return published


def _checkpoint(settings: Settings, domain: Domain) -> dict[str, Any]:
    return json.loads((settings.checkpoint_dir / f"poller_{domain.value}.json").read_text())


# --- xact ---------------------------------------------------------------------------------------
def test_poller__25_rows_batch_10_arrive_in_order_in_three_pages(
    fake: KustoFake, settings: Settings, topics: dict[Domain, str]
) -> None:
    rows = _xact_rows(25)
    times = _insert_each(fake, "Events", rows, datetime.now(UTC) - timedelta(minutes=30))
    poller = Poller.from_settings(settings, Domain.XACT)
    try:
        assert _drain(poller) == [10, 10, 5]
    finally:
        poller.close()
    assert len(fake.queries) == 3
    records = _published(topics[Domain.XACT])
    assert [value["traceId"] for _, value in records] == [r["traceId"] for r in rows]
    assert [key.decode() for key, _ in records] == [r["traceId"] for r in rows]
    assert records[0][1]["data"] == rows[0]["data"] and records[0][1]["ingestion_time"] == times[0]
    assert _checkpoint(settings, Domain.XACT)["last_ingestion_time"] == times[-1]
    assert _checkpoint(settings, Domain.XACT)["last_trace_id"] == rows[-1]["traceId"]


def test_poller__restart_resumes_from_the_checkpoint_without_duplicates(
    fake: KustoFake, settings: Settings, topics: dict[Domain, str]
) -> None:
    first, second = _xact_rows(25, "first"), _xact_rows(5, "second")
    start = datetime.now(UTC) - timedelta(minutes=30)
    _insert_each(fake, "Events", first, start)
    poller = Poller.from_settings(settings, Domain.XACT)
    _drain(poller)
    poller.close()
    _insert_each(fake, "Events", second, start + timedelta(minutes=5))

    restarted = Poller.from_settings(settings, Domain.XACT)  # a new process: state only from the file
    try:
        assert _drain(restarted) == [5]
        assert _drain(restarted) == [0]
    finally:
        restarted.close()
    assert f"strcmp(tostring(traceId), '{first[-1]['traceId']}') > 0" in fake.queries[3].csl
    ids = [value["traceId"] for _, value in _published(topics[Domain.XACT])]
    assert ids == [r["traceId"] for r in first + second]


def test_poller__rows_sharing_an_ingestion_time_split_across_pages_are_neither_lost_nor_repeated(
    fake: KustoFake, settings: Settings, topics: dict[Domain, str]
) -> None:
    base = datetime.now(UTC) - timedelta(minutes=20)
    before, batch, after = _xact_rows(3, "a"), _xact_rows(15, "b"), _xact_rows(4, "c")
    _insert_each(fake, "Events", before, base)
    fake.insert("Events", batch, base + timedelta(seconds=10))  # one ingestion of 15 rows
    _insert_each(fake, "Events", after, base + timedelta(seconds=20))
    poller = Poller.from_settings(settings, Domain.XACT)
    try:
        assert _drain(poller) == [10, 10, 2]
    finally:
        poller.close()
    batch_ids = sorted(r["traceId"] for r in batch)
    assert f"strcmp(tostring(traceId), '{batch_ids[6]}') > 0" in fake.queries[1].csl  # page 1: 3 + 7 of 15
    ids = [value["traceId"] for _, value in _published(topics[Domain.XACT])]
    assert ids == [r["traceId"] for r in before] + batch_ids + [r["traceId"] for r in after]


def test_poller__a_quote_in_a_trace_id_is_escaped_and_paging_continues(
    fake: KustoFake, settings: Settings, topics: dict[Domain, str]
) -> None:
    rows = _xact_rows(14)
    rows[9]["traceId"] = "o'brien\\') or true //"  # the last row of page one becomes the checkpoint
    _insert_each(fake, "Events", rows, datetime.now(UTC) - timedelta(minutes=10))
    poller = Poller.from_settings(settings, Domain.XACT)
    try:
        assert _drain(poller) == [10, 4]
    finally:
        poller.close()
    assert r"strcmp(tostring(traceId), 'o\'brien\\\') or true //') > 0" in fake.queries[1].csl
    assert [value["traceId"] for _, value in _published(topics[Domain.XACT])] == [r["traceId"] for r in rows]


@pytest.mark.parametrize("status", [500, 429])
def test_poller__a_failed_query_leaves_checkpoint_and_topic_unchanged(
    fake: KustoFake, settings: Settings, topics: dict[Domain, str], status: int
) -> None:
    start = datetime.now(UTC) - timedelta(minutes=30)
    _insert_each(fake, "Events", _xact_rows(4), start)
    poller = Poller.from_settings(settings, Domain.XACT)
    try:
        _drain(poller)
        checkpoint = (settings.checkpoint_dir / "poller_xact.json").read_bytes()
        _insert_each(fake, "Events", _xact_rows(3), start + timedelta(minutes=1))
        fake.fail_next(status, times=3, retry_after=0.01 if status == 429 else None)
        sent = len(fake.queries)
        with pytest.raises(TransientError):
            poller.poll_once()
        assert len(fake.queries) - sent == 3  # first attempt + EVENTHOUSE_MAX_RETRIES=2
        assert (settings.checkpoint_dir / "poller_xact.json").read_bytes() == checkpoint
        assert len(_published(topics[Domain.XACT])) == 4
        fake.fail_next(status, times=1)  # one failure within the retry budget: the page still lands once
        assert poller.poll_once().published == 3
    finally:
        poller.close()
    assert len(_published(topics[Domain.XACT])) == 7


def test_poller__an_unacknowledged_publish_leaves_the_checkpoint_unchanged(
    fake: KustoFake, settings: Settings
) -> None:
    """The topic does not exist (and is not auto-created): no delivery report, no checkpoint."""
    _insert_each(fake, "Events", _xact_rows(3), datetime.now(UTC) - timedelta(minutes=5))
    missing = settings.model_copy(
        update={"events_topics": {"xact": f"poller-test-missing-{uuid.uuid4().hex[:8]}"}}
    )
    client = EventhouseClient(fake.url, fake.database, token_provider=lambda: fake.token)
    poller = Poller(
        missing,
        Source.from_settings(missing, Domain.XACT),
        client,
        KafkaSink(missing, Domain.XACT, flush_timeout_seconds=2.0),
    )
    try:
        with pytest.raises(TransientError, match="not delivered"):
            poller.poll_once()
    finally:
        poller.close()
    assert not (settings.checkpoint_dir / "poller_xact.json").exists()


def test_poller__partial_results_are_a_failure_not_a_short_page(
    fake: KustoFake, settings: Settings, topics: dict[Domain, str]
) -> None:
    _insert_each(fake, "Events", _xact_rows(3), datetime.now(UTC) - timedelta(minutes=5))
    fake.fail_next(inline=True, times=3, code="LimitsExceeded", message="partial query failure")
    poller = Poller.from_settings(settings, Domain.XACT)
    try:
        with pytest.raises(TransientError):
            poller.poll_once()
        assert not (settings.checkpoint_dir / "poller_xact.json").exists()
        assert _drain(poller) == [3]
    finally:
        poller.close()


def test_poller__live_loop_survives_a_failed_cycle_and_a_bad_table_stops_it(
    fake: KustoFake, settings: Settings, topics: dict[Domain, str]
) -> None:
    _insert_each(fake, "Events", _xact_rows(12), datetime.now(UTC) - timedelta(minutes=5))
    fake.fail_next(500, times=3)  # the whole first cycle fails
    poller = Poller.from_settings(settings, Domain.XACT)
    worker = threading.Thread(target=poller.run)
    worker.start()
    deadline = time.monotonic() + 20
    while len(_published(topics[Domain.XACT])) < 12 and time.monotonic() < deadline:
        time.sleep(0.2)
    poller.stop()
    worker.join(10)
    poller.close()
    assert not worker.is_alive()
    assert len(_published(topics[Domain.XACT])) == 12

    broken = Poller.from_settings(
        settings.model_copy(update={"eventhouse_tables": {**settings.eventhouse_tables, "xact": "Nope"}}),
        Domain.XACT,
    )
    try:
        with pytest.raises(PermanentError, match="Nope"):
            broken.run()
    finally:
        broken.close()


def test_poller__backfill_pages_its_range_only_and_keeps_its_own_checkpoint(
    fake: KustoFake, settings: Settings, topics: dict[Domain, str]
) -> None:
    day = datetime(2025, 3, 1, tzinfo=UTC)
    old, inside, later = _xact_rows(2, "old"), _xact_rows(23, "in"), _xact_rows(2, "late")
    _insert_each(fake, "Events", old, day - timedelta(hours=1))
    _insert_each(fake, "Events", inside, day)
    _insert_each(fake, "Events", later, day + timedelta(days=1))
    poller = Poller.from_settings(settings, Domain.XACT, backfill=Backfill(day, day + timedelta(days=1)))
    try:
        poller.run()
    finally:
        poller.close()
    assert len(fake.queries) == 3  # 10 + 10 + 3, then exit
    assert [v["traceId"] for _, v in _published(topics[Domain.XACT])] == [r["traceId"] for r in inside]
    assert not (settings.checkpoint_dir / "poller_xact.json").exists()  # the live checkpoint is untouched
    assert len(list(settings.checkpoint_dir.glob("poller_xact_backfill_*.json"))) == 1


# --- claimx ---------------------------------------------------------------------------------------
def _claimx_rows(count: int, project: str) -> list[dict[str, Any]]:
    return [
        {"eventType": "PROJECT_FILE_ADDED", "projectId": project, "mediaId": str(880000 + i)}
        for i in range(count)
    ]


def test_poller__claimx_groups_are_published_whole_and_once(
    fake: KustoFake, settings: Settings, topics: dict[Domain, str]
) -> None:
    base = datetime.now(UTC) - timedelta(minutes=10)
    fake.insert("ClaimXEvents", _claimx_rows(8, "p1"), base)  # page 1: 8 + 2 of p2
    fake.insert("ClaimXEvents", _claimx_rows(5, "p2"), base + timedelta(seconds=1))  # trailing group, re-read
    fake.insert("ClaimXEvents", _claimx_rows(12, "p3"), base + timedelta(seconds=2))  # one group > a page
    fake.insert("ClaimXEvents", _claimx_rows(3, "p4"), base + timedelta(seconds=3))
    poller = Poller.from_settings(settings, Domain.CLAIMX)
    try:
        assert _drain(poller) == [8, 5, 12, 3]
    finally:
        poller.close()
    assert all("traceId" not in q.csl and "strcmp" not in q.csl for q in fake.queries)
    records = [value for _, value in _published(topics[Domain.CLAIMX])]
    assert [(r["projectId"], r["mediaId"]) for r in records] == [
        (p, str(880000 + i)) for p, n in (("p1", 8), ("p2", 5), ("p3", 12), ("p4", 3)) for i in range(n)
    ]
    events = [parse_claimx_record(r, kafka_timestamp=None) for r in records]  # the dispatcher's own parser
    assert len({e.event_id for e in events}) == 28
    assert events[0].ingested_at == base
    assert _checkpoint(settings, Domain.CLAIMX)["last_trace_id"] is None


# --- the CLI process ------------------------------------------------------------------------------
def test_poll_command__sigterm_stops_the_process_cleanly(
    fake: KustoFake, env: dict[str, str], settings: Settings, topics: dict[Domain, str]
) -> None:
    _insert_each(fake, "Events", _xact_rows(25), datetime.now(UTC) - timedelta(minutes=10))
    process = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "poll", "--domain", "xact"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while len(_published(topics[Domain.XACT])) < 25 and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[1].decode()
            time.sleep(0.3)
        assert _checkpoint(settings, Domain.XACT)["last_trace_id"] is not None
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr.decode()
    assert "Traceback" not in stderr.decode()
    assert len(_published(topics[Domain.XACT])) == 25
