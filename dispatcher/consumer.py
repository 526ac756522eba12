"""The dispatcher: Kafka raw topics -> one Celery canvas per event.

Per polled batch (at most ``DISPATCH_BATCH_SIZE`` records):

1. parse and validate each record with its domain's spec; a record that cannot be parsed goes to
   ``{domain}.events.dlq`` with the error in headers (counted) and the batch moves on;
2. drop events whose id the dispatch ledger already holds, or that repeat within the batch;
3. plan the batch (xact: rows + attachment jobs; claimx: rows + enrich units) and enqueue each
   plan's canvas; then record the ids in the ledger;
4. flush the DLQ producer and only then commit the batch's offsets (at-least-once; a crash before
   the commit re-reads the batch, and the ledger + idempotent stages make that harmless).

Scale by running N dispatchers in one consumer group.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
from celery import Celery
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from kombu.exceptions import OperationalError

from core.errors import PipelineError
from core.observability import Metric
from core.security.redact import sanitize_error
from core.settings import Settings
from core.state import Counters, DispatchLedger, PendingAttachments, RowStash, UrlVault
from domains.canvas import DomainSpec, ParsedEvent
from domains.names import Domain
from domains.registry import build_specs
from tasks.canvas import enqueue_plans

log = logging.getLogger("pipeline.dispatcher")

#: Larger unparseable records are cut to this size in the dead-letter topic (producer limit ~1 MB).
DLQ_MAX_VALUE_BYTES = 900_000

#: Failures after which the current batch is re-read (nothing of it was committed).
RECOVERABLE = (redis.RedisError, OperationalError, KafkaException, ConnectionError, OSError)


@dataclass
class BatchStats:
    read: int = 0
    dispatched: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    signatures: int = 0
    per_domain: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )


class Dispatcher:
    def __init__(self, settings: Settings, app: Celery, *, group_id: str | None = None) -> None:
        self.settings = settings
        self.app = app
        self.specs: dict[Domain, DomainSpec] = build_specs(settings)
        self.redis = redis.Redis.from_url(settings.redis_url)
        self.ledger = DispatchLedger(self.redis, settings.dispatch_dedup_ttl_seconds)
        self.vault = UrlVault(self.redis)
        self.stash = RowStash(self.redis)
        self.pending = PendingAttachments(self.redis)
        self.counters = Counters(self.redis)
        base = settings.kafka_config()
        self._consumer_conf = {
            **base,
            "group.id": group_id or settings.kafka_consumer_group,
            "enable.auto.commit": False,
            "auto.offset.reset": settings.kafka_auto_offset_reset,
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": settings.kafka_session_timeout_ms,
            "max.poll.interval.ms": 300000,
        }
        self.consumer = Consumer(self._consumer_conf)
        self.producer = Producer({**base, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
        self._stop = threading.Event()
        self.topics = {settings.topic_for(d.value): d for d in self.specs}

    # -- lifecycle ---------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def run(self, *, idle_exit_seconds: float | None = None) -> None:
        """Consume until :meth:`stop` (or SIGTERM/SIGINT when run from the CLI)."""
        self.consumer.subscribe(list(self.topics))
        idle_since = datetime.now(UTC)
        backoff = 1.0
        try:
            while not self._stop.is_set():
                try:
                    stats = self.poll_once()
                    backoff = 1.0
                except RECOVERABLE as exc:
                    # Nothing of this batch was committed: rejoin the group so the batch is read
                    # again from the committed offsets once the broker / Redis is back.
                    log.error(
                        "dispatch batch failed, re-reading it in %.0f s: %s",
                        backoff,
                        sanitize_error(str(exc)),
                    )
                    self._rejoin()
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                if stats.read:
                    idle_since = datetime.now(UTC)
                elif (
                    idle_exit_seconds is not None
                    and (datetime.now(UTC) - idle_since).total_seconds() > idle_exit_seconds
                ):
                    break
        finally:
            self.close()

    def _rejoin(self) -> None:
        with contextlib.suppress(KafkaException):  # the old member is gone either way
            self.consumer.close()
        self.consumer = Consumer(self._consumer_conf)
        self.consumer.subscribe(list(self.topics))

    def close(self) -> None:
        self.producer.flush(10)
        self.consumer.close()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    # -- one batch ---------------------------------------------------------------------------
    def poll_once(self, timeout: float = 1.0) -> BatchStats:
        messages = self.consumer.consume(num_messages=self.settings.dispatch_batch_size, timeout=timeout)
        stats = BatchStats()
        if not messages:
            return stats
        by_domain: dict[Domain, list[ParsedEvent]] = defaultdict(list)
        for msg in messages:
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("kafka error", extra={"error": str(msg.error())})
                continue
            stats.read += 1
            domain = self.topics[msg.topic()]
            counts = stats.per_domain[domain.value]
            counts[Metric.EVENTS_READ] += 1
            parsed = self._parse(domain, msg, counts)
            if parsed is None:
                stats.dead_lettered += 1
                continue
            by_domain[domain].append(parsed)
        now = datetime.now(UTC)
        for domain, candidates in by_domain.items():
            events = self._new_events(domain, candidates)
            skipped = len(candidates) - len(events)
            stats.duplicates += skipped
            stats.per_domain[domain.value][Metric.DUPLICATES_SKIPPED] += skipped
            plans = self.specs[domain].plan_batch(events, now)
            stats.signatures += enqueue_plans(self.app, plans, self.vault, self.stash, self.pending)
            for plan in plans:
                for name, value in plan.counters.items():
                    stats.per_domain[domain.value][name] += value
            self.ledger.mark(domain.value, [p.event_id for p in plans])
            stats.dispatched += len(plans)
            stats.per_domain[domain.value][Metric.EVENTS_DISPATCHED] += len(plans)
        self.producer.flush(30)
        for domain_name, counts in stats.per_domain.items():
            self.counters.incr_many(domain_name, dict(counts))
        self.consumer.commit(asynchronous=False)
        return stats

    def _new_events(self, domain: Domain, candidates: list[ParsedEvent]) -> list[ParsedEvent]:
        """Drop events the ledger already holds and repeats within the batch (first one wins)."""
        dispatched = self.ledger.seen_many(domain.value, [p.event_id for p in candidates])
        fresh: list[ParsedEvent] = []
        for parsed in candidates:
            if parsed.event_id not in dispatched:
                dispatched.add(parsed.event_id)
                fresh.append(parsed)
        return fresh

    def _parse(self, domain: Domain, msg: Message, counts: dict[str, int]) -> ParsedEvent | None:
        ts_type, ts_ms = msg.timestamp()
        timestamp = datetime.fromtimestamp(ts_ms / 1000, UTC) if ts_ms and ts_ms > 0 else None
        try:
            return self.specs[domain].parse(msg.value() or b"", timestamp)
        except (PipelineError, ValueError, TypeError, RecursionError) as exc:
            reason = sanitize_error(str(exc)) or type(exc).__name__
            value = msg.value() or b""
            headers = [
                ("error", reason.encode()),
                ("error_type", type(exc).__name__.encode()),
                ("source_topic", msg.topic().encode()),
                ("source_partition", str(msg.partition()).encode()),
                ("source_offset", str(msg.offset()).encode()),
                ("failed_at", datetime.now(UTC).isoformat().encode()),
            ]
            if len(value) > DLQ_MAX_VALUE_BYTES:
                # The producer refuses ~1 MB; the whole record stays in the source topic (offset above).
                headers += [("value_truncated", b"true"), ("original_size", str(len(value)).encode())]
                value = value[:DLQ_MAX_VALUE_BYTES]
            self.producer.produce(
                self.settings.dlq_topic_for(domain.value), value=value, key=msg.key(), headers=headers
            )
            counts[Metric.PARSE_ERRORS] += 1
            log.warning(
                "record dead-lettered",
                extra={"domain": domain.value, "error": reason, "offset": msg.offset()},
            )
            return None
