"""What the pipeline is doing right now, read from its real parts (Redis, Kafka, the lake).

Two read-outs:

* :func:`collect_status` -> :class:`Status`: the work still to do (Kafka lag, queues,
  unacknowledged and scheduled tasks, staged rows, work in flight) and the open dead letters.
  ``pipeline status --json`` prints it; scripts and ``pipeline run`` wait on its ``idle`` flag
  through the CLI, never by importing this module. Its JSON field names are a contract, listed in
  the README ("Read-outs for scripts"): add fields, never rename or remove one.
* :func:`summarize` -> :class:`Summary`: counters, table rows, files and dead letters after a run
  (``pipeline summary``).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import Consumer, KafkaException, TopicPartition

from core import keys
from core.deadletters import DeadLetterStore
from core.redis_client import redis_client
from core.schedule import RetrySchedule
from core.settings import Settings
from core.state import Counters, PendingAttachments, PendingTasks
from dispatcher.backpressure import read_states
from domains import registry

#: Version of the ``pipeline status --json`` document; raised only by an incompatible change.
STATUS_SCHEMA = 1

# kombu's Redis transport: a queue is a list named after it (priority sub-queues add
# ``\x06\x16{priority}``); delivered-not-acknowledged messages wait in the ``unacked`` hash;
# declared queues are members of the ``_kombu.binding.{exchange}`` sets.
_KOMBU_SEP = "\x06\x16"
_UNACKED = "unacked"
_SCAN_STEP = 1000  # keys per SCAN call


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _is_task_queue(name: str) -> bool:
    """Celery's queues, not its broadcast ones (remote control ``*.pidbox``, events ``celeryev.*``)."""
    return bool(name) and not name.endswith(".pidbox") and not name.startswith("celeryev")


def queue_depths(client: redis.Redis) -> dict[str, int]:
    """Messages waiting per queue: every queue of the registered domains and every queue a worker
    declared (0 when empty), and every queue list that holds messages (host-local upload queues
    included).

    One pass over the keyspace (``SCAN`` in steps of 1,000): a busy pipeline holds a dispatch-ledger
    key per event of the last 24 h, and a scan per queue name in Redis's default steps of 10 took
    tens of thousands of round trips."""
    names: set[str] = set(registry.all_queues())
    bindings: list[bytes] = []
    candidates: list[bytes] = []
    for key in client.scan_iter(count=_SCAN_STEP):
        name = _text(key)
        if name.startswith("_kombu.binding."):
            bindings.append(key)
        elif "." in name and ":" not in name and not name.startswith(("_kombu", _UNACKED)):
            candidates.append(key)  # a queue, or one of its priority lists (``name\x06\x16N``)
    pipe = client.pipeline(transaction=False)
    for key in bindings:
        pipe.type(key)
    for key in candidates:
        pipe.type(key)
    types = pipe.execute()
    pipe = client.pipeline(transaction=False)
    for key, kind in zip(bindings, types[: len(bindings)], strict=True):
        if kind == b"set":
            pipe.smembers(key)
    for members in pipe.execute():
        names.update(_text(member).split(_KOMBU_SEP)[-1] for member in members)
    lists = [key for key, kind in zip(candidates, types[len(bindings) :], strict=True) if kind == b"list"]
    pipe = client.pipeline(transaction=False)
    for key in lists:
        pipe.llen(key)
    depths: dict[str, int] = {}
    for key, length in zip(lists, pipe.execute(), strict=True):
        base = _text(key).split(_KOMBU_SEP)[0]
        names.add(base)
        depths[base] = depths.get(base, 0) + int(length)
    return {name: depths.get(name, 0) for name in sorted(n for n in names if _is_task_queue(n))}


def unacked(client: redis.Redis) -> int:
    """Tasks delivered to a worker and not yet acknowledged (running, prefetched or waiting ETA)."""
    return int(client.hlen(_UNACKED))


def scheduled(client: redis.Redis, now: float | None = None) -> int:
    """Retries and circuit-open re-queues waiting for their time: the durable schedule's entries
    (``core.schedule``), plus any unacknowledged message with an ETA still ahead (left by a version
    that kept retries in the broker)."""
    now = time.time() if now is None else now
    count = RetrySchedule(client).count()
    for _tag, raw in client.hscan_iter(_UNACKED, count=_SCAN_STEP):
        try:
            eta = json.loads(raw)[0]["headers"].get("eta")
        except (ValueError, TypeError, KeyError, IndexError):
            continue  # not a Celery message: counted by unacked() all the same
        if eta and _timestamp(eta) > now:
            count += 1
    return count


def _timestamp(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return 0.0


def pending_chains(client: redis.Redis) -> int:
    """Attachment chains dispatched and not yet ended (stored or dead-lettered)."""
    return PendingAttachments(client).count()


def staged_rows(client: redis.Redis) -> tuple[dict[str, int], int]:
    """Rows waiting for the flusher per table (every known table, 0 when none), and the rows of
    batches a flusher has claimed but not yet committed (``{table}:batch``)."""
    waiting = {table.value: 0 for table in registry.registered_tables()}
    claimed = 0
    for key in client.scan_iter(match=f"{keys.STAGE_PREFIX}:*", count=_SCAN_STEP):
        if client.type(key) != b"list":
            continue
        rest = _text(key)[len(keys.STAGE_PREFIX) + 1 :]
        if rest.endswith(":batch"):
            claimed += int(client.llen(key))
        elif ":" not in rest:
            waiting[rest] = int(client.llen(key))
    return waiting, claimed


def staged(client: redis.Redis) -> int:
    """All rows waiting for the flusher, over every table."""
    return sum(staged_rows(client)[0].values())


def kafka_lags(settings: Settings, topics: list[str]) -> dict[str, int]:
    """Per topic: records not yet committed by the dispatcher's consumer group.

    While the broker cannot answer (coordinator loading, rebalance) a topic's lag is unknown:
    ``-1``, which is not idle.
    """
    consumer = Consumer(
        {**settings.kafka_config(), "group.id": settings.kafka_consumer_group, "enable.auto.commit": False}
    )
    try:
        return {topic: _topic_lag(consumer, topic) for topic in topics}
    finally:
        consumer.close()


def _topic_lag(consumer: Consumer, topic: str) -> int:
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return 0  # no such topic yet: nothing to read
        lag = 0
        parts = [TopicPartition(topic, p) for p in meta.partitions]
        for tp in consumer.committed(parts, timeout=10):
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            committed = tp.offset if tp.offset >= 0 else low
            lag += max(0, high - committed)
        return lag
    except KafkaException:
        return -1


def kafka_lag(settings: Settings, topics: list[str]) -> int:
    """Records on ``topics`` not yet committed by the dispatcher's group; ``-1`` when unknown."""
    lags = kafka_lags(settings, topics)
    return -1 if any(lag < 0 for lag in lags.values()) else sum(lags.values())


@dataclass
class Status:
    """The document ``pipeline status --json`` prints (schema :data:`STATUS_SCHEMA`).

    Every number is a count; ``kafka_lag`` values are ``-1`` while unknown. ``idle`` is true only
    when every work measure is zero: Kafka lag, queue depths, unacknowledged and scheduled tasks,
    staged rows and every ``in_flight`` entry. Open dead letters are reported, not waited for:
    they are finished work that waits for an operator (``pipeline dlq``). A new kind of work in
    flight goes into ``in_flight`` under a new name, and so counts for ``idle`` by itself.
    """

    kafka_lag: dict[str, int]
    queues: dict[str, int]
    unacked: int
    scheduled: int
    staged: dict[str, int]
    in_flight: dict[str, int]
    dead_letters: dict[str, int]
    health: dict[str, str] = field(default_factory=dict)
    """``redis``/``kafka``: ``ok`` or why not; each process endpoint on this host (dispatcher,
    worker, beat, poller): ``ready``, ``not ready: …`` or ``no endpoint`` (see :func:`health_facts`)."""
    dispatchers: list[dict[str, Any]] = field(default_factory=list)
    """Each live dispatcher's state record (``dispatcher.backpressure``): ``state`` paused/running,
    ``paused`` domain -> reason, ``backlog`` against ``marks``, ``paused_seconds_total``. Not work:
    a paused dispatcher's records wait in Kafka and count in ``kafka_lag``."""

    @property
    def idle(self) -> bool:
        work = [
            *self.kafka_lag.values(),
            *self.queues.values(),
            self.unacked,
            self.scheduled,
            *self.staged.values(),
            *self.in_flight.values(),
        ]
        return all(n == 0 for n in work)

    def to_json(self) -> dict[str, Any]:
        return {"schema": STATUS_SCHEMA, "idle": self.idle, **asdict(self)}


def collect_status(settings: Settings, client: redis.Redis | None = None) -> Status:
    client = client or redis_client(settings)
    staged_by_table, claimed = staged_rows(client)
    letters = DeadLetterStore(client)
    domains = registry.domains()
    return Status(
        kafka_lag=kafka_lags(settings, [settings.topic_for(d.value) for d in domains]),
        queues=queue_depths(client),
        unacked=unacked(client),
        scheduled=scheduled(client),
        staged=staged_by_table,
        in_flight={
            "attachment_chains": pending_chains(client),
            "tasks": PendingTasks(client).count(),
            "flush_batch_rows": claimed,
        },
        dead_letters={d.value: letters.count(d.value) for d in domains},
        health=health_facts(settings, client),
        dispatchers=dispatcher_states(client),
    )


def dispatcher_states(client: redis.Redis) -> list[dict[str, Any]]:
    """The dispatchers' backpressure state records (a stale one belongs to a stopped dispatcher)."""
    return read_states(client)


def health_facts(settings: Settings, client: redis.Redis) -> dict[str, str]:
    """The facts behind the processes' ``/readyz`` (README "Monitoring"), read from here: Redis and
    Kafka answer, and what each process endpoint on this host reports."""
    facts: dict[str, str] = {}
    try:
        client.ping()
        facts["redis"] = "ok"
    except redis.RedisError as exc:
        facts["redis"] = f"no answer ({type(exc).__name__})"
    try:
        consumer = Consumer({**settings.kafka_config(), "group.id": "pipeline-status"})
        try:
            consumer.list_topics(timeout=3)
            facts["kafka"] = "ok"
        finally:
            consumer.close()
    except KafkaException as exc:
        facts["kafka"] = f"no answer ({exc.args[0] if exc.args else 'error'})"
    host = settings.metrics_bind_address
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    ports = {
        "dispatcher": settings.dispatcher_metrics_port,
        "worker": settings.worker_metrics_port,
        "beat": settings.beat_metrics_port,
        "poller": settings.poller_metrics_port,
    }
    for role, port in ports.items():
        if not port:
            continue
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/readyz", timeout=2):  # the operator's own host
                facts[role] = "ready"
        except urllib.error.HTTPError as exc:
            try:
                checks = json.loads(exc.read()).get("checks", {})
            except ValueError:
                checks = {}
            failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
            facts[role] = f"not ready ({failing or exc.code})"
        except OSError:
            facts[role] = "no endpoint"
    return facts


def topic_size(settings: Settings, topic: str) -> int:
    consumer = Consumer({**settings.kafka_config(), "group.id": "pipeline-status"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return 0
        total = 0
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def lake_files(root: Path) -> tuple[int, int]:
    count = size = 0
    if root.exists():
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                count += 1
                size += (Path(dirpath) / name).stat().st_size
    return count, size


def table_rows(settings: Settings) -> dict[str, int]:
    # Imported here, not at the top: deltalake and polars take most of a second to load, and
    # `pipeline status` (polled every few seconds by `pipeline run`) never reads a table.
    from writers.flush import read_table

    rows: dict[str, int] = {}
    for table in registry.registered_tables():
        try:
            rows[table.value] = read_table(settings, table).height
        except Exception:  # noqa: BLE001 - a table not created yet (or unreadable) counts as 0 rows in a summary
            rows[table.value] = 0
    return rows


@dataclass
class Summary:
    counters: dict[str, dict[str, int]]
    tables: dict[str, int]
    dead_letters: dict[str, int]
    kafka_dead_letters: dict[str, int]
    files: dict[str, tuple[int, int]]
    lake: str
    extra: dict[str, Any] = field(default_factory=dict)


def summarize(settings: Settings) -> Summary:
    client = redis_client(settings)
    counters = Counters(client)
    letters = DeadLetterStore(client)
    files = (
        {d.value: lake_files(settings.files_root / d.value) for d in registry.domains()}
        if settings.file_store == "local"
        else {}
    )
    return Summary(
        counters={d.value: counters.get(d.value) for d in registry.domains()},
        tables=table_rows(settings),
        dead_letters={d.value: letters.count(d.value) for d in registry.domains()},
        kafka_dead_letters={
            d.value: topic_size(settings, settings.dlq_topic_for(d.value)) for d in registry.domains()
        },
        files=files,
        lake=str(settings.lake_dir.resolve()),
    )
