"""Issue 11: Kafka stays the buffer, Redis never fills up (real processes, Kafka, Redis, simulator).

* With every stage worker stopped, the dispatcher moves at most its high-water mark (plus one
  dispatch batch) of work into Redis, pauses, and leaves the rest in Kafka as consumer lag; once the
  workers start, everything drains and every row and file arrives exactly once.
* A Redis at its ``maxmemory`` (a private server; never the shared one) refuses the dispatcher's
  writes: the dispatcher pauses with a clear log line and a counter, does not spin, and recovers
  once memory is freed, with nothing lost.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis

from dispatcher.backpressure import read_states
from ops.status import kafka_lag
from simulator import generate
from tests.e2e.test_faults import (
    assert_each_event_and_attachment_exactly_once,
    lines,
    running_pipeline,
    slow,
    wait_for,
)
from tests.harness import WORKER_GROUPS, create_topics
from tests.integration.dispatch_rig import PrivateServer, dispatch_rig

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

XACT_QUEUES = ("xact.download", "xact.upload", "xact.write")


def _bounded_backlog_then_drain(
    tmp_path: Path, events: int, high: int, batch: int, seed: int, drain_timeout: float = 240
) -> None:
    env = {
        "BACKPRESSURE_HIGH_WATER": str(high),
        "BACKPRESSURE_LOW_WATER": str(high // 2),
        "DISPATCH_BATCH_SIZE": str(batch),
        "BACKPRESSURE_CHECK_INTERVAL_MS": "100",
        "RETRY_DELAYS_SECONDS": "1,1,1",
    }
    rows = generate.xact_events(events, attachments_per_event=1, file_size=512, seed=seed)
    with running_pipeline(tmp_path, env, start=False) as (h, _broker):
        h.redis.flushdb()
        create_topics(list(h.topics.values()) + list(h.dlq_topics.values()))
        h.start_simulator()
        h.start_dispatcher()  # no stage worker runs
        h.publish_lines("xact", lines(rows))
        topic = [h.topics["xact"]]
        peak = {q: 0 for q in XACT_QUEUES}
        peak["chains"] = 0

        def _observe() -> bool:
            for q in XACT_QUEUES:
                peak[q] = max(peak[q], int(h.redis.llen(q)))
            peak["chains"] = max(peak["chains"], int(h.redis.zcard("pipeline:pending:index")))
            states = read_states(h.redis)
            return bool(states) and states[0]["state"] == "paused"

        wait_for(h, _observe, 90, "the dispatcher to pause", interval=0.05)
        settle = time.monotonic() + 5
        while time.monotonic() < settle:  # paused stays paused; nothing more moves into Redis
            _observe()
            time.sleep(0.05)
        # One batch is ``batch`` events; each puts one message on a queue (rows on write, the
        # attachment chain on download) and one chain in flight.
        bound = high + batch
        assert max(peak.values()) <= bound, peak
        lag = kafka_lag(h.settings, topic)
        assert lag >= events - bound, f"only {lag} records wait in Kafka"
        (state,) = read_states(h.redis)
        assert state["paused"]["xact"], state
        assert state["backlog"]["attachments_in_flight"] <= bound
        assert h.procs["dispatcher"].poll() is None
        # Start the stages: the backlog drains, intake resumes, everything lands exactly once.
        for group in WORKER_GROUPS:
            h.start_worker(group)
        h.start_beat()
        h.wait_idle(timeout=drain_timeout)
        assert kafka_lag(h.settings, topic) == 0
        assert_each_event_and_attachment_exactly_once(h, rows)
        (state,) = read_states(h.redis)
        assert state["state"] == "running" and state["paused_seconds_total"] > 0, state


def test_stopped_workers__backlog_stays_under_the_mark_and_the_rest_waits_in_kafka(tmp_path: Path) -> None:
    _bounded_backlog_then_drain(tmp_path, events=600, high=200, batch=50, seed=71)


@slow
@pytest.mark.timeout(3600)
def test_stopped_workers__20000_events__backlog_bounded_then_all_land_once(tmp_path: Path) -> None:
    _bounded_backlog_then_drain(tmp_path, events=20_000, high=2000, batch=500, seed=72, drain_timeout=3000)


def _fill(client: redis.Redis) -> int:
    """Write 256 KiB values until Redis refuses (``noeviction``); returns how many it took."""
    n = 0
    while True:
        try:
            client.set(f"filler:{n}", b"x" * 262_144)
        except redis.exceptions.OutOfMemoryError:
            return n
        n += 1


def test_redis_at_maxmemory__dispatcher_pauses_without_spinning_and_recovers(tmp_path: Path, caplog) -> None:
    server = PrivateServer(
        tmp_path / "redis", extra=("--maxmemory", "24mb", "--maxmemory-policy", "noeviction")
    )
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        # The memory mark is off here, so the dispatcher meets the refusal itself.
        with dispatch_rig(
            server.url,
            BACKPRESSURE_MEMORY_HIGH_RATIO="0",
            BACKPRESSURE_MEMORY_LOW_RATIO="0",
            DISPATCH_BATCH_SIZE="50",
        ) as rig:
            dispatcher = rig.dispatcher()
            rows = generate.xact_events(200, attachments_per_event=1, seed=73)
            fillers = _fill(client)
            rig.publish("xact", lines(rows))
            thread = threading.Thread(target=dispatcher.run, daemon=True)
            thread.start()
            try:
                deadline = time.monotonic() + 60
                while dispatcher.metrics.redis_oom_refusals == 0 and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert dispatcher.metrics.redis_oom_refusals >= 1
                assert "redis_oom" in dispatcher.backpressure.paused.values()
                time.sleep(4)  # paused, not spinning: no new refusal while memory stays full
                assert dispatcher.metrics.redis_oom_refusals <= 2, dispatcher.metrics
                assert thread.is_alive()
                assert rig.lag() > 0
                assert "out of memory" in caplog.text
                client.delete(*[f"filler:{i}" for i in range(fillers)])
                deadline = time.monotonic() + 60
                while rig.lag() and time.monotonic() < deadline:
                    time.sleep(0.3)
                assert rig.lag() == 0
                assert not dispatcher.backpressure.paused
            finally:
                dispatcher.stop()
                thread.join(30)
            dispatched = {
                k.decode().rsplit(":", 1)[1] for k in client.scan_iter("pipeline:dispatched:xact:*")
            }
            assert len(dispatched) == len(rows), "an event was lost"
            assert client.llen("xact.download") >= len(rows)
            assert rig.dlq("xact", timeout=2) == []
    finally:
        server.stop()


def test_memory_mark__dispatcher_pauses_before_redis_refuses(tmp_path: Path) -> None:
    server = PrivateServer(
        tmp_path / "redis", extra=("--maxmemory", "24mb", "--maxmemory-policy", "noeviction")
    )
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        with dispatch_rig(server.url, DISPATCH_BATCH_SIZE="50") as rig:
            dispatcher = rig.dispatcher()  # default marks: 60 % / 50 % of maxmemory
            dispatcher.subscribe()
            fillers = 0
            while int(client.info("memory")["used_memory"]) < 0.7 * 24 * 1024 * 1024:
                client.set(f"filler:{fillers}", b"x" * 262_144)
                fillers += 1
            rig.publish("xact", lines(generate.xact_events(100, attachments_per_event=1, seed=74)))
            try:
                for _ in range(20):
                    assert dispatcher.poll_once(timeout=0.3).read == 0
                assert dispatcher.backpressure.paused == {"xact": "redis memory", "claimx": "redis memory"}
                assert dispatcher.metrics.redis_oom_refusals == 0
                client.delete(*[f"filler:{i}" for i in range(fillers)])
                rig.drain(dispatcher)
                assert rig.lag() == 0 and not dispatcher.backpressure.paused
            finally:
                dispatcher.close()
    finally:
        server.stop()
