"""The dispatcher: Kafka raw topics -> one Celery canvas per event.

Per polled batch (at most ``DISPATCH_BATCH_SIZE`` records):

0. apply backpressure (:mod:`dispatcher.backpressure`): a domain whose backlog in Redis is above
   its high-water mark has its assigned partitions paused; polling goes on (the group membership
   and rebalances are kept), the records wait in Kafka;
1. parse each record with its domain's spec; **any** exception for one record (bad JSON, a date
   outside the calendar, an integer too large for a float, a record timestamp in the year 10000)
   sends that record to ``{domain}.events.dlq`` (stage ``parse``) and the batch goes on;
2. drop events whose id the dispatch ledger already holds, or that repeat within the batch;
3. plan the batch; when planning fails, each event is planned alone to find the ones that fail
   (dead-lettered, stage ``plan``) and the rest is planned together again; the same for enqueueing
   (stage ``enqueue``). Then the ledger records the dispatched ids;
4. confirm every dead-letter delivery (:mod:`dispatcher.deadletter`), wait until Redis holds the
   batch on disk (:mod:`dispatcher.durability`), and only then commit the batch's offsets.

A failure of Kafka or Redis (including a confirmation that does not come) commits nothing: the
batch is read again (at-least-once; the ledger and the idempotent stages make that harmless).
A write refused by a full Redis (``noeviction``) pauses intake until memory is free again.
Scale by running N dispatchers in one consumer group.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from celery import Celery
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from core.observability import Metric
from core.redis_client import redis_client
from core.settings import Settings
from core.state import Counters, DispatchLedger, PendingAttachments, RowStash, UrlVault
from dispatcher.backpressure import Backpressure, DispatcherMetrics
from dispatcher.deadletter import DeadLetterDeliveryError, DeadLetterProducer
from dispatcher.durability import Durability
from dispatcher.isolation import (
    RECOVERABLE,
    enqueue_isolated,
    error_text,
    is_oom,
    plan_isolated,
    record_time,
)
from dispatcher.monitoring import observe_batch
from domains import registry
from domains.canvas import DomainSpec, EventPlan, ParsedEvent
from domains.names import Domain, queue_name
from tasks.canvas import enqueue_plans

log = logging.getLogger("pipeline.dispatcher")


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
        self.specs: dict[Domain, DomainSpec] = registry.specs()
        self.planners = {d: spec.planner(settings) for d, spec in self.specs.items()}
        self.redis = redis_client(settings)
        self.ledger = DispatchLedger(self.redis, settings.dispatch_dedup_ttl_seconds)
        self.vault = UrlVault(self.redis)
        self.stash = RowStash(self.redis)
        self.pending = PendingAttachments(self.redis)
        self.counters = Counters(self.redis)
        self.metrics = DispatcherMetrics()
        base = settings.kafka_config()
        group = self.group = group_id or settings.kafka_consumer_group
        self._consumer_conf = {
            **base,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": settings.kafka_auto_offset_reset,
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": settings.kafka_session_timeout_ms,
            "max.poll.interval.ms": 300000,
        }
        self.topics = {settings.topic_for(d.value): d for d in self.specs}
        self.dlq = DeadLetterProducer(base, delivery_timeout_seconds=settings.dlq_delivery_timeout_seconds)
        self.backpressure = Backpressure(
            self.redis,
            settings,
            {
                d.value: ([queue_name(d, s) for s in spec.stages], sorted(str(t) for t in spec.table_names()))
                for d, spec in self.specs.items()
            },
            self.metrics,
            group=group,
        )
        self.durability = Durability(
            self.redis,
            settings.dispatch_durability,
            settings.dispatch_waitaof_timeout_ms,
            marker_key=f"pipeline:dispatcher:durable:{self.backpressure.member}",
        )
        self.consumer = Consumer(self._consumer_conf)
        self._paused: set[str] = set()  # domains whose partitions this consumer has paused
        self._stop = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def subscribe(self) -> None:
        self.consumer.subscribe(list(self.topics), on_assign=self._on_assign)

    def run(self, *, idle_exit_seconds: float | None = None) -> None:
        """Consume until :meth:`stop` (or SIGTERM/SIGINT when run from the CLI)."""
        self.subscribe()
        idle_since = time.monotonic()
        backoff = 1.0
        try:
            while not self._stop.is_set():
                try:
                    turn_started = time.perf_counter()
                    stats = self.poll_once()
                    observe_batch(self, stats, time.perf_counter() - turn_started)
                    backoff = 1.0
                except Exception as exc:  # never exit on a batch: it is read again
                    if is_oom(exc):  # raised as is, or wrapped by kombu/Celery
                        self._on_oom(exc)
                        continue
                    self.metrics.batches_failed += 1
                    level = logging.ERROR if isinstance(exc, RECOVERABLE) else logging.CRITICAL
                    log.log(
                        level,
                        "dispatch batch failed (%s), re-reading it in %.0f s: %s",
                        type(exc).__name__,
                        backoff,
                        error_text(exc),
                        exc_info=not isinstance(exc, RECOVERABLE),
                    )
                    self._rejoin()
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                if stats.read or self.backpressure.paused:  # paused is not idle: Kafka holds work
                    idle_since = time.monotonic()
                elif idle_exit_seconds is not None and time.monotonic() - idle_since > idle_exit_seconds:
                    break
        finally:
            self.close()

    def _on_oom(self, exc: Exception) -> None:
        self.metrics.batches_failed += 1
        self.backpressure.note_oom()
        log.error(
            "Redis refused a write: out of memory (maxmemory reached, refusal #%d). Intake paused; "
            "the batch is read again once Redis memory is below the low-water mark: %s",
            self.metrics.redis_oom_refusals,
            error_text(exc),
        )
        self._rejoin()  # the batch is re-read from the committed offsets, paused until memory frees

    def _rejoin(self) -> None:
        with contextlib.suppress(KafkaException):  # the old member is gone either way
            self.consumer.close()
        self._paused.clear()
        self.consumer = Consumer(self._consumer_conf)
        self.subscribe()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.dlq.close()
        self.backpressure.forget(self.redis)
        with contextlib.suppress(KafkaException, RuntimeError):
            self.consumer.close()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    # -- backpressure ------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """New partitions of a paused domain start paused (no record of them is fetched)."""
        consumer.incremental_assign(partitions)
        held = [tp for tp in partitions if self.topics[tp.topic].value in self._paused]
        if held:
            consumer.pause(held)

    def _apply_backpressure(self) -> None:
        started = time.perf_counter()
        try:
            self._pause_or_resume()
        finally:
            self.metrics.backpressure_seconds += time.perf_counter() - started

    def _pause_or_resume(self) -> None:
        wanted = set(self.backpressure.check())
        if wanted == self._paused:
            return
        assignment = self.consumer.assignment()
        for domain in wanted - self._paused:
            parts = [tp for tp in assignment if self.topics[tp.topic].value == domain]
            if parts:
                self.consumer.pause(parts)
            log.warning(
                "backpressure: pausing %s intake (%s); backlog %s",
                domain,
                self.backpressure.paused[domain],
                self.metrics.backlog,
            )
        for domain in self._paused - wanted:
            parts = [tp for tp in assignment if self.topics[tp.topic].value == domain]
            if parts:
                self.consumer.resume(parts)
            log.info("backpressure: resuming %s intake; backlog %s", domain, self.metrics.backlog)
        self._paused = wanted
        self.backpressure.write_state(self.redis)

    # -- one batch ---------------------------------------------------------------------------
    def _consume(self, timeout: float) -> list[Message]:
        """Up to ``DISPATCH_BATCH_SIZE`` records: waits up to ``timeout`` for the first, then at most
        ``DISPATCH_LINGER_MS`` for the rest. (One ``consume`` of a whole batch returns only when the
        batch is full or ``timeout`` ends: under a light load every record waited up to 1 s.)"""
        size = self.settings.dispatch_batch_size
        linger = min(self.settings.dispatch_linger_ms / 1000, timeout)
        messages = self.consumer.consume(num_messages=size, timeout=linger)
        if messages or size <= 1 or timeout <= linger:
            return messages
        first = self.consumer.consume(num_messages=1, timeout=timeout - linger)
        if not first:
            return first
        return first + self.consumer.consume(num_messages=size - 1, timeout=linger)

    def poll_once(self, timeout: float = 1.0) -> BatchStats:
        self._apply_backpressure()
        messages = self._consume(timeout)
        stats = BatchStats()
        if not messages:
            return stats
        by_domain: dict[Domain, list[tuple[ParsedEvent, Message]]] = defaultdict(list)
        for msg in messages:
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("kafka error", extra={"error": str(msg.error())})
                continue
            stats.read += 1
            domain = self.topics[msg.topic()]
            stats.per_domain[domain.value][Metric.EVENTS_READ] += 1
            try:
                parsed = self.specs[domain].parse(msg.value() or b"", record_time(msg))
            except Exception as exc:  # noqa: BLE001 - any failure of one record is that record's
                self._dead_letter(domain, msg, exc, "parse", stats)
                continue
            by_domain[domain].append((parsed, msg))
        now = datetime.now(UTC)
        for domain, candidates in by_domain.items():
            self._dispatch_domain(domain, candidates, now, stats)
        try:
            self.dlq.confirm()  # a dead letter not delivered: nothing is committed, the batch is re-read
        except DeadLetterDeliveryError:
            self.metrics.dlq_delivery_failures += 1
            raise
        for domain_name, counts in stats.per_domain.items():
            self.counters.incr_many(domain_name, dict(counts))
        self.durability.confirm()  # raises if Redis cannot confirm the batch is on disk
        self.consumer.commit(asynchronous=False)
        self._count(stats)
        return stats

    def _dispatch_domain(
        self, domain: Domain, candidates: list[tuple[ParsedEvent, Message]], now: datetime, stats: BatchStats
    ) -> None:
        counts = stats.per_domain[domain.value]
        events = self._new_events(domain, candidates)
        skipped = len(candidates) - len(events)
        stats.duplicates += skipped
        counts[Metric.DUPLICATES_SKIPPED] += skipped
        plans = self._plan(domain, events, now, stats)
        plans, signatures = self._enqueue(domain, plans, {p.event_id: m for p, m in events}, stats)
        stats.signatures += signatures
        self.backpressure.enqueued(domain.value, signatures)
        for plan in plans:
            for name, value in plan.counters.items():
                counts[name] += value
        self.ledger.mark(domain.value, [p.event_id for p in plans])
        stats.dispatched += len(plans)
        counts[Metric.EVENTS_DISPATCHED] += len(plans)

    def _plan(
        self, domain: Domain, events: list[tuple[ParsedEvent, Message]], now: datetime, stats: BatchStats
    ) -> list[EventPlan]:
        """Plan together (claimx groups a project's media events); isolate what fails alone."""
        return plan_isolated(
            self.planners[domain],
            events,
            now,
            lambda msg, exc: self._dead_letter(domain, msg, exc, "plan", stats),
        )

    def _enqueue(
        self, domain: Domain, plans: list[EventPlan], by_id: dict[str, Message], stats: BatchStats
    ) -> tuple[list[EventPlan], int]:
        """Enqueue in one go; on a data error one by one, dead-lettering the plans that fail."""

        def _failed(plan: EventPlan, exc: Exception) -> None:
            # Nothing of it stays tracked: enqueue_plans untracks what a failed publish registered.
            self._dead_letter(domain, by_id[plan.event_id], exc, "enqueue", stats)

        return enqueue_isolated(
            lambda batch: enqueue_plans(self.app, batch, self.vault, self.stash, self.pending), plans, _failed
        )

    def _new_events(
        self, domain: Domain, candidates: list[tuple[ParsedEvent, Message]]
    ) -> list[tuple[ParsedEvent, Message]]:
        """Drop events the ledger already holds and repeats within the batch (first one wins)."""
        dispatched = self.ledger.seen_many(domain.value, [p.event_id for p, _ in candidates])
        fresh = []
        for parsed, msg in candidates:
            if parsed.event_id not in dispatched:
                dispatched.add(parsed.event_id)
                fresh.append((parsed, msg))
        return fresh

    def _dead_letter(
        self, domain: Domain, msg: Message, exc: Exception, stage: str, stats: BatchStats
    ) -> None:
        reason = error_text(exc)
        self.dlq.send(
            self.settings.dlq_topic_for(domain.value),
            msg,
            reason=reason,
            error_type=type(exc).__name__,
            stage=stage,
        )
        stats.dead_lettered += 1
        stats.per_domain[domain.value][Metric.PARSE_ERRORS if stage == "parse" else f"{stage}_errors"] += 1
        self.metrics.dead_lettered[stage] = self.metrics.dead_lettered.get(stage, 0) + 1
        log.warning(
            "record dead-lettered",
            extra={"domain": domain.value, "stage": stage, "error": reason[:500], "offset": msg.offset()},
        )

    def _count(self, stats: BatchStats) -> None:
        m = self.metrics
        m.batches += 1
        m.records_read += stats.read
        m.events_dispatched += stats.dispatched
        m.duplicates_skipped += stats.duplicates
        m.durability_waits = self.durability.waits
        m.durability_failures = self.durability.failures
