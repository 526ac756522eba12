"""What the pipeline is doing right now, read from its real parts (Redis, Kafka, the lake).

Used by ``pipeline summary``, by the run command to decide that the pipeline is idle, and by
the end-to-end tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import Consumer, KafkaException, TopicPartition

from core.deadletters import DeadLetterStore
from core.settings import Settings
from core.state import Counters
from domains.names import Domain, Table, all_queues

_STAGE_PREFIX = "pipeline:stage"


def queue_depths(client: redis.Redis) -> dict[str, int]:
    """Messages waiting per queue (kombu's Redis transport keeps a queue as a list)."""
    names = set(all_queues()) | {
        k.decode() for k in client.scan_iter(match="*.upload.host.*") if client.type(k) == b"list"
    }
    return {name: int(client.llen(name)) for name in sorted(names)}


def unacked(client: redis.Redis) -> int:
    """Tasks delivered to a worker and not yet acknowledged (running, prefetched or waiting ETA)."""
    return int(client.hlen("unacked"))


def pending_chains(client: redis.Redis) -> int:
    """Attachment chains dispatched and not yet ended (stored or dead-lettered)."""
    from core.state import PendingAttachments

    return PendingAttachments(client).count()


def staged(client: redis.Redis) -> int:
    total = 0
    for key in client.scan_iter(match=f"{_STAGE_PREFIX}:*"):
        if client.type(key) == b"list":
            total += int(client.llen(key))
    return total


def kafka_lag(settings: Settings, topics: list[str]) -> int:
    """Records on ``topics`` not yet committed by the dispatcher's consumer group.

    While the broker cannot answer (coordinator loading, rebalance) the lag is unknown: returns
    ``-1``, which callers waiting for idleness treat as busy.
    """
    try:
        return _kafka_lag(settings, topics)
    except KafkaException:
        return -1


def _kafka_lag(settings: Settings, topics: list[str]) -> int:
    consumer = Consumer(
        {**settings.kafka_config(), "group.id": settings.kafka_consumer_group, "enable.auto.commit": False}
    )
    try:
        lag = 0
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None:
                continue
            parts = [TopicPartition(topic, p) for p in meta.partitions]
            for tp in consumer.committed(parts, timeout=10):
                _low, high = consumer.get_watermark_offsets(tp, timeout=10)
                committed = tp.offset if tp.offset >= 0 else _low
                lag += max(0, high - committed)
        return lag
    finally:
        consumer.close()


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
    from writers.flush import read_table

    rows: dict[str, int] = {}
    for table in Table:
        try:
            rows[table.value] = read_table(settings, table).height
        except Exception:  # noqa: BLE001 - a table not created yet has no rows
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
    client = redis.Redis.from_url(settings.redis_url)
    counters = Counters(client)
    letters = DeadLetterStore(client)
    files = (
        {d.value: lake_files(settings.files_root / d.value) for d in Domain}
        if settings.file_store == "local"
        else {}
    )
    return Summary(
        counters={d.value: counters.get(d.value) for d in Domain},
        tables=table_rows(settings),
        dead_letters={d.value: letters.count(d.value) for d in Domain},
        kafka_dead_letters={d.value: topic_size(settings, settings.dlq_topic_for(d.value)) for d in Domain},
        files=files,
        lake=str(settings.lake_dir.resolve()),
    )
