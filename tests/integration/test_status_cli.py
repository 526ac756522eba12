"""``pipeline status --json`` and ``pipeline dlq list --json`` against real Redis and Kafka.

Each kind of work (Kafka lag, a queued task, an unacknowledged and scheduled task, staged rows, an
attachment chain in flight, a claimed flush batch) is put in place alone, with the real clients
that make it in production (Kafka producer, Celery ``send_task``, kombu's delivery, the stager,
the pending-chain index), and must turn ``idle`` false on its own; open dead letters are reported
and leave ``idle`` true. The commands run as a script would run them: subprocesses of the CLI.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from core.deadletters import DeadLetterStore
from core.state import PendingAttachments
from domains.names import Table
from tests.harness import KAFKA, Harness, create_topics
from writers.staging import Stager, batch_key

pytestmark = pytest.mark.integration

#: The field names the README documents for `pipeline status --json` and `pipeline dlq list --json`.
STATUS_FIELDS = {
    "schema",
    "idle",
    "kafka_lag",
    "queues",
    "unacked",
    "scheduled",
    "staged",
    "in_flight",
    "dead_letters",
}
LETTER_FIELDS = {
    "id",
    "domain",
    "stage",
    "task_name",
    "payload",
    "category",
    "error",
    "attempts",
    "key",
    "first_failed_at",
    "failed_at",
    "status",
    "replays",
}


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Harness]:
    """A Redis db and Kafka topics of this test only (no processes are started)."""
    h = Harness(tmp_path)
    h.redis.flushdb()
    create_topics(list(h.topics.values()) + list(h.dlq_topics.values()), partitions=1)
    try:
        yield h
    finally:
        h.redis.flushdb()
        h.stop_all()
        AdminClient({"bootstrap.servers": KAFKA}).delete_topics(
            list(h.topics.values()) + list(h.dlq_topics.values())
        )


def _pipeline(h: Harness, *args: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(h.pipeline(*args))
    return document


def _status(h: Harness) -> dict[str, Any]:
    return _pipeline(h, "status", "--json")


def _work(status: dict[str, Any]) -> dict[str, int]:
    """Every non-zero work measure of a status document, by a flat name."""
    flat = {
        **{f"kafka_lag.{k}": v for k, v in status["kafka_lag"].items()},
        **{f"queues.{k}": v for k, v in status["queues"].items()},
        "unacked": status["unacked"],
        "scheduled": status["scheduled"],
        **{f"staged.{k}": v for k, v in status["staged"].items()},
        **{f"in_flight.{k}": v for k, v in status["in_flight"].items()},
    }
    return {k: v for k, v in flat.items() if v}


def _celery(h: Harness) -> Celery:
    return Celery("status-test", broker=h.env_vars["REDIS_URL"], set_as_current=False)


def _commit_to_end(h: Harness, topic: str) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": KAFKA,
            "group.id": h.env_vars["KAFKA_CONSUMER_GROUP"],
            "enable.auto.commit": False,
        }
    )
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.commit(offsets=[TopicPartition(topic, 0, high)], asynchronous=False)
    finally:
        consumer.close()


def test_status_json__empty_pipeline_is_idle_with_every_documented_field(rig: Harness) -> None:
    status = _status(rig)
    assert set(status) >= STATUS_FIELDS  # fields are only ever added
    assert status["schema"] == 1
    assert status["idle"] is True
    assert _work(status) == {}
    assert set(status["kafka_lag"]) == set(rig.topics.values())
    assert status["staged"]["xact_events"] == 0  # every known table is listed
    assert set(status["in_flight"]) >= {"attachment_chains", "flush_batch_rows"}
    assert status["dead_letters"] == {"xact": 0, "claimx": 0}


def test_status_json__each_kind_of_work_alone_makes_it_busy(rig: Harness) -> None:
    topic = rig.topics["xact"]

    def kafka_lag() -> Callable[[], None]:
        producer = Producer({"bootstrap.servers": KAFKA})
        for i in range(2):
            producer.produce(topic, value=b"{}", key=str(i).encode())
        producer.flush(10)
        return lambda: _commit_to_end(rig, topic)

    def queued_task() -> Callable[[], None]:
        _celery(rig).send_task("xact.download", args=[{}], queue="xact.download")
        return lambda: rig.redis.delete("xact.download")

    def delivered_scheduled_task() -> Callable[[], None]:
        app = _celery(rig)
        app.send_task("xact.download", args=[{}], queue="xact.download", countdown=3600)
        connection = app.connection_for_write()
        message = connection.default_channel.basic_get("xact.download", no_ack=False)
        assert message is not None

        def ack() -> None:
            message.ack()
            connection.release()

        return ack

    def staged_rows() -> Callable[[], None]:
        Stager(rig.redis).stage(Table.XACT_EVENTS, [{"event_id": "e1"}, {"event_id": "e2"}])
        return lambda: rig.redis.delete("pipeline:stage:xact_events")

    def chain_in_flight() -> Callable[[], None]:
        PendingAttachments(rig.redis).add_many({"xact:m1": "{}"}, now=time.time())
        return lambda: PendingAttachments(rig.redis).done("xact:m1")

    def claimed_flush_batch() -> Callable[[], None]:
        key = batch_key("pipeline:stage", Table.XACT_EVENTS)
        rig.redis.rpush(key, '{"event_id": "e3"}')
        return lambda: rig.redis.delete(key)

    expected = {
        kafka_lag: {f"kafka_lag.{topic}": 2},
        queued_task: {"queues.xact.download": 1},
        delivered_scheduled_task: {"unacked": 1, "scheduled": 1},
        staged_rows: {"staged.xact_events": 2},
        chain_in_flight: {"in_flight.attachment_chains": 1},
        claimed_flush_batch: {"in_flight.flush_batch_rows": 1},
    }
    for make_work, work in expected.items():
        undo = make_work()
        status = _status(rig)
        assert (status["idle"], _work(status)) == (False, work), make_work.__name__
        undo()
    status = _status(rig)
    assert (status["idle"], _work(status)) == (True, {})


def test_status_json__open_dead_letters_are_reported_and_leave_it_idle(rig: Harness) -> None:
    _add_letters(rig)
    status = _status(rig)
    assert status["dead_letters"] == {"xact": 2, "claimx": 1}
    assert status["idle"] is True


def _add_letters(h: Harness) -> None:
    store = DeadLetterStore(h.redis)
    for domain, key in (("xact", "m1"), ("xact", "m2"), ("claimx", "c1")):
        store.add(
            domain=domain,
            stage="download",
            task_name=f"{domain}.download",
            payload={"media_id": key},
            category="permanent",
            error="404 Not Found",
            attempts=1,
            key=key,
        )


def test_dlq_list_json__every_field_of_every_letter_and_the_domain_filter(rig: Harness) -> None:
    _add_letters(rig)
    every = _pipeline(rig, "dlq", "list", "--json")
    assert (every["schema"], every["count"]) == (1, 3)
    assert all(set(letter) >= LETTER_FIELDS for letter in every["letters"])  # fields are only ever added
    assert sorted(letter["key"] for letter in every["letters"]) == ["c1", "m1", "m2"]
    assert {letter["status"] for letter in every["letters"]} == {"open"}

    xact = _pipeline(rig, "dlq", "list", "--json", "--domain", "xact")
    assert xact["count"] == 2
    assert {letter["domain"] for letter in xact["letters"]} == {"xact"}
    assert xact["letters"][0]["payload"] == {"media_id": "m1"}

    none = _pipeline(rig, "dlq", "list", "--json", "--status", "resolved")
    assert none == {"schema": 1, "count": 0, "letters": []}
