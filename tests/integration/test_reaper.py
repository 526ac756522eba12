"""The durable retry schedule and the reaper, against a real Redis and the real Celery app.

End-to-end behaviour (real workers killed, messages lost in the fetch window) is in
``tests/e2e/test_recovery.py``; here each rule is checked on its own, fast.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import redis
from celery import signature
from kombu import pools

from core import keys
from core.schedule import RetrySchedule
from core.settings import load_settings
from core.state import PendingTasks
from tasks import app
from tasks.canvas import redo_record
from tasks.reaper import reap
from tasks.schedule import release_due

pytestmark = pytest.mark.integration

SETTINGS = load_settings(reaper_lost_after_seconds=60, reaper_unacked_grace_seconds=30)


@pytest.fixture()
def own_broker_db() -> int:
    return 13


@pytest.fixture(autouse=True)
def _fresh_producer_pools() -> Iterator[None]:
    """kombu keeps one producer pool per broker URL process-wide; ``own_broker`` closes the app's
    pool between tests, so start and end each test with fresh ones."""
    pools.reset()
    yield
    pools.reset()


def _queued(client: redis.Redis, queue: str) -> list[dict]:
    return [json.loads(raw)["headers"] for raw in client.lrange(queue, 0, -1)]


# --- the schedule ------------------------------------------------------------------------------------
def test_claim_due__every_due_entry_goes_to_exactly_one_of_several_releasers(own_broker: redis.Redis) -> None:
    schedule, now = RetrySchedule(own_broker), time.time()
    for i in range(300):
        schedule.add(f"t{i}", json.dumps({"i": i}), due=now - 1)
    schedule.add("later", "{}", due=now + 3600)
    claimed: list[str] = []
    lock = threading.Lock()

    def releaser() -> None:
        mine = RetrySchedule(redis.Redis(connection_pool=own_broker.connection_pool))
        while batch := mine.claim_due(time.time(), limit=7):
            with lock:
                claimed.extend(batch)

    threads = [threading.Thread(target=releaser) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    counts = Counter(json.loads(e)["i"] for e in claimed)
    assert sorted(counts) == list(range(300)) and set(counts.values()) == {1}
    assert schedule.count() == 1 and schedule.due_at("later") is not None


def test_schedule__the_same_task_scheduled_twice_is_one_entry(own_broker: redis.Redis) -> None:
    schedule = RetrySchedule(own_broker)
    schedule.add("task-1", '{"first": 1}', due=100.0)
    schedule.add("task-1", '{"second": 1}', due=200.0)
    assert schedule.count() == 1 and schedule.due_at("task-1") == 200.0
    assert schedule.claim_due(300.0) == ['{"second": 1}']


def test_release_due__publishes_the_same_task_id_and_retry_count_without_an_eta(
    own_broker: redis.Redis,
) -> None:
    sig = signature("xact.write.rows", args=("xact_events", "pipeline:rows:x", 1), app=app)
    sig.set(task_id="retry-me", retries=2)
    from kombu.utils.json import dumps

    RetrySchedule(own_broker).add("retry-me", dumps(dict(sig)), due=time.time() + 60)
    assert release_due(app, own_broker) == 0  # not due yet
    assert release_due(app, own_broker, now=time.time() + 61) == 1
    [headers] = _queued(own_broker, "xact.write")
    assert headers["id"] == "retry-me" and headers["retries"] == 2 and headers.get("eta") is None
    assert RetrySchedule(own_broker).count() == 0


# --- the reaper --------------------------------------------------------------------------------------
def _publish(task: str, args: tuple, task_id: str) -> None:
    signature(task, args=args, app=app).apply_async(task_id=task_id)


def _deliver(client: redis.Redis, queue: str, tag: str, *, ago: float) -> dict:
    """Move the queue's message into kombu's unacked hash, as a worker's fetch would."""
    raw = client.rpop(queue)
    message = json.loads(raw)
    client.hset("unacked", tag, json.dumps([message, queue, queue]))
    client.zadd("unacked_index", {tag: time.time() - ago})
    return message


def _alive(client: redis.Redis, node: str, queues: list[str]) -> None:
    client.hset(keys.WORKERS, node, json.dumps({"queues": queues}))
    client.set(keys.worker_alive(node), json.dumps({"queues": queues}), ex=60)


def test_reaper__restores_a_dead_worker_s_message_and_leaves_a_live_one_s(own_broker: redis.Redis) -> None:
    _publish("xact.write.rows", ("xact_events", "r1", 1), "dead-1")
    _publish("xact.write.rows", ("xact_events", "r2", 1), "live-1")
    _publish("xact.write.rows", ("xact_events", "r3", 1), "fresh-1")
    _deliver(own_broker, "xact.write", "tag-dead", ago=120)
    _deliver(own_broker, "xact.write", "tag-live", ago=120)
    _deliver(own_broker, "xact.write", "tag-fresh", ago=1)  # just received: about to start
    _alive(own_broker, "live@h", ["xact.write"])
    own_broker.hset(keys.RUNNING, "live-1", json.dumps({"worker": "live@h", "at": time.time()}))
    own_broker.hset(keys.RUNNING, "dead-1", json.dumps({"worker": "gone@h", "at": time.time()}))

    report = reap(app, own_broker, SETTINGS)

    assert report.restored == 1 and report.dead_workers == ["gone@h"]
    assert [h["id"] for h in _queued(own_broker, "xact.write")] == ["dead-1"]
    assert {t.decode() for t in own_broker.hkeys("unacked")} == {"tag-live", "tag-fresh"}
    assert set(own_broker.hkeys(keys.RUNNING)) == {b"live-1"}


def test_reaper__re_sends_a_dead_worker_s_flush_which_has_no_unacknowledged_copy(
    own_broker: redis.Redis,
) -> None:
    redo = {"task": "pipeline.flush", "args": [], "kwargs": {}, "options": {"task_id": "flush-1"}}
    own_broker.hset(keys.RUNNING, "flush-1", json.dumps({"worker": "gone@h", "at": 0, "redo": redo}))
    assert reap(app, own_broker, SETTINGS).tasks_redriven == 1
    assert [h["task"] for h in _queued(own_broker, "pipeline.maintenance")] == ["pipeline.flush"]


def test_reaper__a_lost_task_is_suspect_once_then_re_sent_with_its_id(own_broker: redis.Redis) -> None:
    tasks, now = PendingTasks(own_broker), time.time()
    lost = signature("claimx.enrich", args=([{"event_id": "e1"}],), app=app)
    lost.set(task_id="lost-1")
    waiting = signature("claimx.enrich", args=([{"event_id": "e2"}],), app=app)
    waiting.set(task_id="waiting-1")
    tasks.add_many({"lost-1": redo_record(lost), "waiting-1": redo_record(waiting)}, now=now - 600)
    waiting.apply_async()  # still in its queue: not lost, however long it waits

    first = reap(app, own_broker, SETTINGS, now=now)
    assert first.suspects == 1 and first.tasks_redriven == 0
    assert [h["id"] for h in _queued(own_broker, "claimx.enrich")] == ["waiting-1"]

    second = reap(app, own_broker, SETTINGS, now=now + 1)
    assert second.tasks_redriven == 1
    assert sorted(h["id"] for h in _queued(own_broker, "claimx.enrich")) == ["lost-1", "waiting-1"]
    # Re-driven work gets a fresh window; the waiting one was touched when it was found.
    assert reap(app, own_broker, SETTINGS, now=now + 2).tasks_redriven == 0


def test_reaper__a_scheduled_retry_is_not_lost(own_broker: redis.Redis) -> None:
    tasks, now = PendingTasks(own_broker), time.time()
    sig = signature("claimx.enrich", args=([{"event_id": "e3"}],), app=app)
    sig.set(task_id="sched-1")
    tasks.add_many({"sched-1": redo_record(sig)}, now=now - 600)
    RetrySchedule(own_broker).add("sched-1", "{}", due=now + 3600)
    for step in range(3):
        assert reap(app, own_broker, SETTINGS, now=now + step).tasks_redriven == 0
    assert own_broker.llen("claimx.enrich") == 0


def test_reaper__a_dead_host_s_upload_queue_is_re_driven_from_download(own_broker: redis.Redis) -> None:
    job = {
        "domain": "xact",
        "media_id": "m-ghost",
        "event_id": "e-1",
        "url_display": "https://h/x.pdf",
        "blob_path": "documentsReceived/A-1/t-1/A-1_x.pdf",
        "file_name": "A-1_x.pdf",
        "file_type": "PDF",
    }
    downloaded = {**job, "local_path": "/cache/on/the/dead/host", "sha256": "ab" * 32}
    signature("xact.upload", args=(downloaded,), app=app).apply_async(queue="xact.upload.host.ghost")
    own_broker.sadd(keys.HOST_QUEUES, "xact.upload.host.ghost", "xact.upload.host.alive")
    _alive(own_broker, "w@alive", ["xact.download", "xact.upload.host.alive"])
    own_broker.rpush("xact.upload.host.alive", "untouched")

    report = reap(app, own_broker, SETTINGS)

    assert report.chains_redriven == 1
    assert own_broker.llen("xact.upload.host.ghost") == 0 and own_broker.llen("xact.upload.host.alive") == 1
    [headers] = _queued(own_broker, "xact.download")
    assert headers["task"] == "xact.download" and "m-ghost" in headers["argsrepr"]
    assert "/cache/on/the/dead/host" not in headers["argsrepr"]  # a fresh run of the chain
    assert own_broker.hget(keys.PENDING_TASK, "xact:m-ghost").decode() == headers["id"]
