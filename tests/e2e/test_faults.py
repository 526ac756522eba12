"""Fault tests: kill workers and the dispatcher mid-run, restart the broker, feed hostile input.

Every test runs a whole pipeline (``tests.harness``) on a Redis server of its own
(:class:`PrivateRedis`: a throwaway ``redis-server`` with AOF on a free port), so a test may stop
and restart its broker, and no other run sharing the stack's Redis can take its messages. Faults
are injected only from outside: SIGKILL by PID, the simulator's fault API, records on Kafka.

The default variants are short; the long ones are marked ``slow`` and run with ``RUN_SLOW=1``.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from core.deadletters import DeadLetterStore
from domains.names import Table
from domains.xact.models import parse_xact_record
from domains.xact.paths import plan_attachments
from simulator import generate
from simulator.files import expected_bytes
from tests.harness import KAFKA, WORKER_GROUPS, Harness, create_topics
from tests.private_redis import PrivateRedis

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
_skip_unless_slow = pytest.mark.skipif(
    os.environ.get("RUN_SLOW") != "1", reason="long fault run: set RUN_SLOW=1"
)


def slow(test: Callable[..., None]) -> Callable[..., None]:
    """Marks a long variant ``slow`` (``-m slow``) and skips it unless ``RUN_SLOW=1``."""
    return pytest.mark.slow(_skip_unless_slow(test))


FILES_PREFIX = f"/{generate.XACT_FILE_HOST}/synthetic/"
#: Worker loss by SIGKILL of the whole worker leaves its tasks in Redis's ``unacked`` hash until the
#: visibility timeout; these settings make that timeout short enough for a test while keeping the
#: settings' own rule (timeout > longest retry delay + task time limit).
SHORT_VISIBILITY = {
    "VISIBILITY_TIMEOUT_SECONDS": "42",
    "TASK_TIME_LIMIT_SECONDS": "40",
    "RETRY_DELAYS_SECONDS": "1,1,1",
}


# --- a broker of the test's own ------------------------------------------------------------------


def start_pipeline(h: Harness, *, concurrency: dict[str, int] | None = None, dispatcher: bool = True) -> None:
    """``Harness.start_all`` with a per-group worker concurrency."""
    h.redis.flushdb()
    create_topics(list(h.topics.values()) + list(h.dlq_topics.values()))
    h.start_simulator()
    for group in WORKER_GROUPS:
        h.start_worker(group, concurrency=(concurrency or {}).get(group, 2))
    h.start_beat()
    if dispatcher:
        h.start_dispatcher()


@contextmanager
def running_pipeline(
    tmp: Path,
    extra_env: dict[str, str] | None = None,
    *,
    start: bool = True,
    concurrency: dict[str, int] | None = None,
    fsync: str = "everysec",
) -> Iterator[tuple[Harness, PrivateRedis]]:
    """A started pipeline on a private Redis; everything stopped on exit."""
    broker = PrivateRedis(tmp / "redis", fsync=fsync)
    broker.start()
    h = Harness(tmp, extra_env={"REDIS_URL": f"{broker.url}/9", **(extra_env or {})})
    try:
        if start:
            start_pipeline(h, concurrency=concurrency)
        yield h, broker
    finally:
        h.stop_all()
        broker.stop()


# --- observation helpers ---------------------------------------------------------------------------


def wait_for(
    h: Harness, predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}\n{h.logs()}")


def lines(rows: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(row, separators=(",", ":")).encode() for row in rows]


def file_requests(h: Harness) -> int:
    return int(h.sim("GET", "/_sim/stats").get("files", 0))


def children(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (the prefork pool of a Celery worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def expected_attachments(rows: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """``media_id -> (blob_path, url)`` for every attachment of the synthetic xact rows."""
    out: dict[str, tuple[str, str]] = {}
    for raw in lines(rows):
        for item in plan_attachments(parse_xact_record(raw)):
            out[item.media_id] = (item.blob_path, item.attachment_url)
    return out


def assert_each_event_and_attachment_exactly_once(h: Harness, rows: list[dict[str, Any]]) -> None:
    """One row per event, one inventory row and one lake file (exact bytes) per attachment, no failures."""
    events = h.table(Table.XACT_EVENTS)
    assert events.height == events["trace_id"].n_unique() == len(rows)
    assert set(events["trace_id"].to_list()) == {r["traceId"] for r in rows}
    expected = expected_attachments(rows)
    inventory = h.table(Table.XACT_ATTACHMENTS)
    assert inventory.height == inventory["media_id"].n_unique() == len(expected)
    assert set(inventory["media_id"].to_list()) == set(expected)
    assert set(h.lake_files("xact")) == {blob for blob, _url in expected.values()}
    for blob, url in expected.values():
        assert h.lake_file("xact", blob).read_bytes() == expected_bytes(url), blob
    assert h.table(Table.XACT_ATTACHMENTS_FAILED).height == 0
    assert DeadLetterStore(h.redis).count("xact") == 0


def read_topic(
    topic: str, *, at_least: int, timeout: float = 30.0, give_up: Callable[[], bool] = lambda: False
) -> list[Message]:
    """Every record of ``topic`` from the start, waiting until ``at_least`` arrived (or timeout,
    or ``give_up()``)."""
    consumer = Consumer(
        {
            "bootstrap.servers": KAFKA,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        records: list[Message] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not give_up():
            records += [m for m in consumer.consume(100, timeout=0.5) if not m.error()]
            if len(records) >= at_least:
                time.sleep(1.0)  # anything beyond the expected count shows up too
                records += [m for m in consumer.consume(100, timeout=0.5) if not m.error()]
                break
        return records
    finally:
        consumer.close()


def produce_raw(topic: str, values: list[bytes], *, max_bytes: int = 1_000_000) -> None:
    """Publish exact bytes, no key (the project's publisher parses lines to pick a key; hostile
    input must reach Kafka untouched, as a broken upstream would send it)."""
    producer = Producer(
        {"bootstrap.servers": KAFKA, "acks": "all", "linger.ms": 0, "message.max.bytes": max_bytes}
    )
    errors: list[str] = []
    for value in values:
        producer.produce(
            topic, value=value, on_delivery=lambda err, _m: errors.append(str(err)) if err else None
        )
        producer.flush(30)  # one record per request: a large record never shares a batch
    assert not errors, errors


def interleave(good: list[bytes], bad: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for i in range(max(len(good), len(bad))):
        out += good[i : i + 1] + bad[i : i + 1]
    return out


def alive(h: Harness, name: str) -> bool:
    return h.procs[name].poll() is None


# --- killing workers -------------------------------------------------------------------------------


def _downloads_in_flight(h: Harness, *, requested: int, done: int) -> Callable[[], bool]:
    return lambda: file_requests(h) >= requested and h.counters("xact").get("downloaded", 0) >= done


@slow  # 60 s; `make test` covers a whole-worker kill in tests/e2e/test_recovery.py and test_chaos_short.py
def test_worker_group_killed__in_flight_tasks_redelivered_after_visibility_timeout_and_land_once(
    tmp_path: Path,
) -> None:
    """SIGKILL of a worker's whole process group (a lost host): its unacknowledged tasks stay in
    Redis and a replacement worker restores them once the visibility timeout passed; every
    attachment then ends exactly once in the table and the lake."""
    rows = generate.xact_events(12, attachments_per_event=2, file_size=32 * 1024, seed=11)
    with running_pipeline(tmp_path, SHORT_VISIBILITY, concurrency={"xact": 4}) as (h, _broker):
        h.sim("POST", "/_sim/faults", {"rule": {"path_prefix": FILES_PREFIX, "delay_seconds": 1.5}})
        h.publish_lines("xact", lines(rows))
        wait_for(h, _downloads_in_flight(h, requested=6, done=2), 60, "downloads in flight")
        h.kill("worker-xact")
        killed_at = time.monotonic()
        held = h.redis.hlen("unacked")
        assert held > 0, "the killed worker held no task: the kill was not mid-run"
        # kombu restores unacknowledged messages older than the visibility timeout when a worker
        # starts (and on a ~100 s sweep after that): start the replacement once they are due.
        time.sleep(
            max(0.0, int(SHORT_VISIBILITY["VISIBILITY_TIMEOUT_SECONDS"]) + 1 - (time.monotonic() - killed_at))
        )
        h.start_worker("xact", concurrency=4)
        h.wait_idle(timeout=240)  # a message lost in the kill returns via pipeline.sweep
        assert_each_event_and_attachment_exactly_once(h, rows)
        per_file = h.sim("GET", "/_sim/stats/files")
        assert max(per_file.values()) >= 2, "no download was interrupted and re-run"


@slow  # 18 s; `make test` kills a single pool child in tests/e2e/test_chaos_short.py
def test_worker_children_killed__parent_requeues_their_tasks_and_each_lands_once(tmp_path: Path) -> None:
    """SIGKILL of the pool processes running downloads: the surviving parent rejects their tasks
    back to the queue (acks_late + reject_on_worker_lost) at once, without waiting for a timeout."""
    rows = generate.xact_events(12, attachments_per_event=2, file_size=32 * 1024, seed=12)
    env = {"RETRY_DELAYS_SECONDS": "1,1,1"}
    with running_pipeline(tmp_path, env, concurrency={"xact": 4}) as (h, _broker):
        h.sim("POST", "/_sim/faults", {"rule": {"path_prefix": FILES_PREFIX, "delay_seconds": 1.5}})
        h.publish_lines("xact", lines(rows))
        wait_for(h, _downloads_in_flight(h, requested=6, done=2), 60, "downloads in flight")
        pool = children(h.procs["worker-xact"].pid)
        assert pool, "no pool processes found"
        for pid in pool:
            os.kill(pid, signal.SIGKILL)
        h.wait_idle(timeout=90)
        assert alive(h, "worker-xact")
        assert_each_event_and_attachment_exactly_once(h, rows)
        per_file = h.sim("GET", "/_sim/stats/files")
        assert max(per_file.values()) >= 2, "no download was interrupted and re-run"


@slow
def test_worker_group_killed_twice_under_load__every_attachment_lands_once(tmp_path: Path) -> None:
    """Long variant: 100 events x 3 attachments, the worker group killed twice, replacements
    started at once (the in-flight tasks come back on kombu's periodic unacked sweep)."""
    rows = generate.xact_events(100, attachments_per_event=3, file_size=64 * 1024, seed=13)
    with running_pipeline(tmp_path, SHORT_VISIBILITY, concurrency={"xact": 4}) as (h, _broker):
        h.sim("POST", "/_sim/faults", {"rule": {"path_prefix": FILES_PREFIX, "delay_seconds": 0.5}})
        h.publish_lines("xact", lines(rows))
        for done in (40, 150):
            wait_for(h, _downloads_in_flight(h, requested=done + 4, done=done), 180, f"{done} downloads")
            h.kill("worker-xact")
            h.start_worker("xact", concurrency=4)
        h.wait_idle(timeout=400)
        assert_each_event_and_attachment_exactly_once(h, rows)


# --- killing the dispatcher ------------------------------------------------------------------------


@slow  # 150 s; `make test` kills the dispatcher mid-stream in tests/e2e/test_chaos_short.py
def test_dispatcher_killed_mid_stream__restart_loses_no_event_and_duplicates_none(tmp_path: Path) -> None:
    """SIGKILL between batches or inside one: offsets are committed only after a batch was
    enqueued, so the restarted dispatcher re-reads at most one batch; the ledger and idempotent
    stages keep that re-read from adding rows or files."""
    plain = generate.xact_events(1500, attachments_per_event=0, seed=21)
    with_files = generate.xact_events(150, attachments_per_event=1, file_size=512, seed=22)
    rows = plain + with_files
    env = {"DISPATCH_BATCH_SIZE": "50", "RETRY_DELAYS_SECONDS": "1,1,1"}
    with running_pipeline(tmp_path, env) as (h, _broker):
        h.publish_lines("xact", lines(plain) + lines(with_files))
        wait_for(
            h,
            lambda: h.counters("xact").get("events_dispatched", 0) >= 100,
            60,
            "the dispatcher to be mid-stream",
            interval=0.02,
        )
        h.kill("dispatcher")
        dispatched_at_kill = h.counters("xact").get("events_dispatched", 0)
        assert dispatched_at_kill < len(rows), "the stream was over before the kill"
        h.start_dispatcher()
        h.wait_idle(timeout=150)
        assert_each_event_and_attachment_exactly_once(h, rows)
        counters = h.counters("xact")
        assert counters["events_dispatched"] >= len(rows)
        assert counters.get("parse_errors", 0) == 0


# --- restarting the broker -------------------------------------------------------------------------


def test_redis_restarted_between_batches__state_survives_and_the_pipeline_reconnects(tmp_path: Path) -> None:
    """A clean Redis restart (AOF) while idle: workers, Beat and the dispatcher reconnect on their
    own, and the state kept in Redis (dispatch ledger, done markers) survives, so the first batch
    published again adds nothing while a new batch is processed in full."""
    first = generate.xact_events(10, attachments_per_event=2, file_size=2048, seed=31)
    second = generate.xact_events(10, attachments_per_event=2, file_size=2048, seed=32)
    with running_pipeline(tmp_path, {"RETRY_DELAYS_SECONDS": "1,1,1"}) as (h, broker):
        h.publish_lines("xact", lines(first))
        h.wait_idle(timeout=90)
        broker.stop(signal.SIGTERM)
        time.sleep(3)
        broker.start()
        h.publish_lines("xact", lines(first) + lines(second))
        h.wait_idle(timeout=120)
        for name, proc in h.procs.items():
            assert proc.poll() is None, f"{name} exited after the Redis restart"
        assert_each_event_and_attachment_exactly_once(h, first + second)
        assert h.counters("xact")["duplicates_skipped"] >= len(first)
        requested = h.sim("GET", "/_sim/stats/files")
        assert max(requested.values()) == 1, "a file of the first batch was downloaded again"


@slow
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_redis_restarted_mid_run__every_attachment_lands_once(tmp_path: Path, how: str) -> None:
    """The broker goes away for 3 s while downloads run (SIGTERM = clean, SIGKILL = crash with
    ``appendfsync always``); tasks cut off by the outage come back after the visibility timeout."""
    rows = generate.xact_events(20, attachments_per_event=2, file_size=32 * 1024, seed=33)
    fsync = "always" if how == "sigkill" else "everysec"
    with running_pipeline(tmp_path, SHORT_VISIBILITY, concurrency={"xact": 4}, fsync=fsync) as (h, broker):
        h.sim("POST", "/_sim/faults", {"rule": {"path_prefix": FILES_PREFIX, "delay_seconds": 1.0}})
        h.publish_lines("xact", lines(rows))
        wait_for(h, _downloads_in_flight(h, requested=8, done=4), 60, "downloads in flight")
        broker.stop(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
        time.sleep(3)
        broker.start()
        h.wait_idle(timeout=300)
        for name, proc in h.procs.items():
            assert proc.poll() is None, f"{name} exited after the Redis restart"
        assert_each_event_and_attachment_exactly_once(h, rows)


# --- hostile input ---------------------------------------------------------------------------------

XACT_HOSTILE = {
    "truncated JSON": b'{"type": "verisk.claims.property.xn.documentsReceived", "traceId": "3f9b',
    "missing traceId": json.dumps(
        {
            "type": "verisk.claims.property.xn.documentsReceived",
            "version": 1,
            "utcDateTime": "2026-02-01T00:00:00Z",
            "data": {},
        }
    ).encode(),
    "missing type": json.dumps(
        {"traceId": "7d0c3c7e-0000-4000-8000-000000000001", "utcDateTime": "2026-02-01T00:00:00Z", "data": {}}
    ).encode(),
    "a JSON array": b'[{"traceId": "7d0c3c7e-0000-4000-8000-000000000002"}]',
    "a JSON string": b'"just a string"',
    "binary junk": bytes(range(256)) * 4,
    "empty value": b"",
}
CLAIMX_HOSTILE = {
    "truncated JSON": b'{"eventType": "PROJECT_CREATED", "projectId": "60',
    "missing eventType": b'{"projectId": "6000001", "IngestionTime": "2026-02-01T00:00:00Z"}',
    "missing projectId": b'{"eventType": "PROJECT_CREATED", "IngestionTime": "2026-02-01T00:00:00Z"}',
    "a JSON array": b"[1, 2, 3]",
    "binary junk": b"\xff\xfe\x00\x01" * 64,
}


def test_hostile_records__each_dead_lettered_with_its_error_and_valid_neighbours_processed(
    tmp_path: Path,
) -> None:
    """Bad records interleaved with good ones in one batch: each bad record lands once in
    ``{domain}.events.dlq`` with an ``error`` header, the dispatcher keeps running, and every valid
    event of the same batch is processed."""
    xact_rows = generate.xact_events(6, attachments_per_event=1, file_size=1024, seed=41)
    claimx_rows = generate.claimx_events(6, projects=1, seed=41)
    with running_pipeline(tmp_path, {"RETRY_DELAYS_SECONDS": "1,1,1"}, start=False) as (h, _broker):
        start_pipeline(h, dispatcher=False)  # everything published before the first poll: one batch
        produce_raw(h.topics["xact"], interleave(lines(xact_rows), list(XACT_HOSTILE.values())))
        produce_raw(h.topics["claimx"], interleave(lines(claimx_rows), list(CLAIMX_HOSTILE.values())))
        h.start_dispatcher()
        h.wait_idle(timeout=120)
        assert alive(h, "dispatcher")
        for domain, hostile in (("xact", XACT_HOSTILE), ("claimx", CLAIMX_HOSTILE)):
            records = read_topic(h.dlq_topics[domain], at_least=len(hostile))
            assert sorted(r.value() or b"" for r in records) == sorted(hostile.values()), domain
            for record in records:
                headers = dict(record.headers() or [])
                assert headers.get("error"), (domain, record.value()[:40])
                assert headers["source_topic"].decode() == h.topics[domain]
            assert h.counters(domain)["parse_errors"] == len(hostile)
        assert_each_event_and_attachment_exactly_once(h, xact_rows)
        claimx_events = h.table(Table.CLAIMX_EVENTS)
        assert claimx_events.height == claimx_events["event_id"].n_unique() == len(claimx_rows)


def _hostile_then_valid(tmp_path: Path, bad: bytes, *, max_bytes: int = 1_000_000) -> None:
    """Publish ``bad`` then three valid xact events; the bad record must reach the DLQ with an error
    header, the dispatcher must survive it and process the valid events behind it."""
    rows = generate.xact_events(3, attachments_per_event=0, seed=42)
    with running_pipeline(tmp_path, {"RETRY_DELAYS_SECONDS": "1,1,1"}) as (h, _broker):
        produce_raw(h.topics["xact"], [bad, *lines(rows)], max_bytes=max_bytes)
        records = read_topic(
            h.dlq_topics["xact"], at_least=1, timeout=30, give_up=lambda: not alive(h, "dispatcher")
        )
        assert alive(h, "dispatcher"), "the dispatcher died on a hostile record:\n" + h.logs()
        assert len(records) == 1, "no dead letter within 30 s: the dispatcher is stuck\n" + h.logs()
        value, headers = records[0].value() or b"", dict(records[0].headers() or [])
        assert headers["error"]
        assert value and bad.startswith(value)  # the record itself, or its head when cut to fit
        h.wait_idle(timeout=60)
        assert set(h.table(Table.XACT_EVENTS)["trace_id"].to_list()) == {r["traceId"] for r in rows}


def test_hostile_record__deeply_nested_json_is_dead_lettered_and_dispatcher_survives(tmp_path: Path) -> None:
    """``[[[[…]]]]`` 100 000 levels deep makes ``json.loads`` raise RecursionError (not a ValueError)."""
    _hostile_then_valid(tmp_path, b"[" * 100_000 + b"]" * 100_000)


def test_hostile_record__one_near_the_broker_size_limit_is_dead_lettered_and_dispatcher_survives(
    tmp_path: Path,
) -> None:
    """A ~1 MB record: accepted by a topic at the broker's default limit (1 048 588 bytes), but
    larger than the producer's default ``message.max.bytes`` (1 000 000) used for the DLQ."""
    bad = b'{"type": "junk", "pad": "' + b"x" * 1_040_000 + b'"'  # also truncated JSON
    _hostile_then_valid(tmp_path, bad, max_bytes=1_048_000)
