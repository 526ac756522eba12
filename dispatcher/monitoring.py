"""Metrics and health of the dispatcher and the Eventhouse poller (names: ``core.metrics``).

* :func:`serve_dispatcher`: ``/metrics``, ``/healthz`` (the consume loop turned within
  :data:`LOOP_STALE_SECONDS`) and ``/readyz`` (broker, Redis and Kafka answer) on
  ``DISPATCHER_METRICS_PORT``; the dispatcher's own counters (``Dispatcher.metrics``, a plain
  object kept by the consumer) are read at scrape time.
* :func:`observe_batch`: called by the consume loop after each turn: per-domain figures, batch
  duration, and where the loop stands (no broker round trip);
* :class:`LagMonitor`: consumer lag per assigned partition, from the broker, on a thread and a
  connection of its own (started by :func:`serve_dispatcher`).
* :func:`serve_poller` / :func:`observe_poll`: rows read and the checkpoint's position and age.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from core import metrics as m
from core.observability import Metric
from core.redis_client import tls_options
from core.settings import Settings
from tasks.monitoring import broker_check

# The dispatcher, its batch stats and the poller are typed ``Any`` here: this module sits below
# dispatcher.consumer and dispatcher.poller, which call it (no import cycle).
Dispatcher = BatchStats = Poller = Any

#: The consume loop polls at least every few seconds; longer silence means it is stuck.
LOOP_STALE_SECONDS = 120.0
_TICKS_PER_SECOND = 10_000_000
_DEAD_LETTER_COUNTERS = (Metric.PARSE_ERRORS, "plan_errors", "enqueue_errors")


def kafka_check(settings: Settings, timeout: float = 3.0) -> m.Check:
    """Kafka answers a metadata request (one admin client, reused)."""
    admin = AdminClient(settings.kafka_config())

    def _check() -> None:
        meta = admin.list_topics(timeout=timeout)
        if not meta.brokers:
            raise KafkaException("no broker in the metadata")

    return _check


def serve_dispatcher(settings: Settings, dispatcher: Dispatcher) -> m.Endpoint | None:
    started = time.time()

    def _live() -> str | None:
        last = _last_loop.get(id(dispatcher), started)
        silent = time.time() - last
        return f"consume loop silent for {silent:.0f} s" if silent > LOOP_STALE_SECONDS else None

    for domain in dispatcher.topics.values():  # counters start at 0 (rate() sees the first event)
        for counter in (
            m.DISPATCHER_RECORDS_READ,
            m.DISPATCHER_EVENTS_DISPATCHED,
            m.DISPATCHER_DUPLICATES,
            m.DISPATCHER_DEAD_LETTERED,
        ):
            counter.labels(str(domain))
    health = m.Health(
        checks={
            "broker": broker_check(dispatcher.app),
            "redis": m.redis_check(settings.redis_url, **tls_options(settings)),
            "kafka": kafka_check(settings),
        },
        live=_live,
    )
    endpoint = m.serve(
        "dispatcher",
        settings.metrics_bind_address,
        settings.dispatcher_metrics_port,
        health=health,
        collectors=[DispatcherCollector(dispatcher)],
    )
    if endpoint is not None:  # metrics served: someone can read the lag
        LagMonitor(dispatcher).start()
    return endpoint


_last_loop: dict[int, float] = {}
#: Where each dispatcher's consume loop stands: its assigned partitions and their positions (the
#: next offset it will read; negative: nothing fetched yet), written by the loop after every turn.
_positions: dict[int, list[TopicPartition]] = {}
#: How often the consumer-lag gauge asks the broker for the partitions' offsets.
LAG_REFRESH_SECONDS = 5.0


def observe_batch(dispatcher: Dispatcher, stats: BatchStats, seconds: float) -> None:
    """One turn of the consume loop ended with ``stats`` (an empty poll too). Never raises.

    No broker round trip here: the loop only notes where it stands (``position`` is local to
    librdkafka); :class:`LagMonitor` asks the broker, on a connection of its own."""
    now = time.time()
    _last_loop[id(dispatcher)] = now
    m.DISPATCHER_LAST_BATCH.set(now)
    try:
        consumer = dispatcher.consumer
        _positions[id(dispatcher)] = consumer.position(consumer.assignment())
    except (KafkaException, RuntimeError):  # closed while rejoining: the next turn notes it
        pass
    if not stats.read:
        return
    m.DISPATCHER_BATCH_SECONDS.observe(seconds)
    for domain, counts in stats.per_domain.items():
        m.DISPATCHER_RECORDS_READ.labels(domain).inc(counts.get(Metric.EVENTS_READ, 0))
        m.DISPATCHER_EVENTS_DISPATCHED.labels(domain).inc(counts.get(Metric.EVENTS_DISPATCHED, 0))
        m.DISPATCHER_DUPLICATES.labels(domain).inc(counts.get(Metric.DUPLICATES_SKIPPED, 0))
        m.DISPATCHER_DEAD_LETTERED.labels(domain).inc(sum(counts.get(k, 0) for k in _DEAD_LETTER_COUNTERS))


class LagMonitor:
    """The consumer-lag gauge, per assigned partition, refreshed every ``every`` seconds by a
    thread of its own (:meth:`start`), off the consume loop.

    The offsets come from the broker (``ListOffsets``, ``OffsetFetch``), not from librdkafka's
    cache, which only fetches refresh (it read low while backpressure paused the partitions), and
    over an admin client's own connection: asked on the consumer's connection, every query queued
    behind the consumer's long-poll fetch (the broker answers one request per connection at a
    time), about ``fetch.wait.max.ms`` (500 ms) each, so refreshing 12 partitions stopped the
    consume loop for about 6 s (measured; see ``docs/benchmarks.md``).

    Lag = high watermark - where the dispatcher stands: its position, else (nothing fetched yet: a
    partition paused or just assigned) the group's committed offset, else the start of the log."""

    def __init__(self, dispatcher: Dispatcher, *, every: float = LAG_REFRESH_SECONDS, timeout: float = 5.0):
        self.dispatcher = dispatcher
        self.every = every
        self.timeout = timeout
        self.admin = AdminClient(dispatcher.settings.kafka_config())
        self._stop = threading.Event()

    def refresh(self) -> bool:
        """One measurement of the partitions the loop last noted; False when it could not be made."""
        standing = _positions.get(id(self.dispatcher))
        if not standing:
            return False
        parts = [TopicPartition(tp.topic, tp.partition) for tp in standing]
        try:
            high = self._offsets(parts, OffsetSpec.latest())
            low = self._offsets(parts, OffsetSpec.earliest())
            committed = self._committed(parts)
        except (KafkaException, TimeoutError, ValueError):  # best effort: the next refresh tries again
            return False
        for tp in standing:
            key = (tp.topic, tp.partition)
            if high.get(key, -1) < 0:
                continue
            at = tp.offset if tp.offset >= 0 else committed.get(key, -1)
            at = at if at >= 0 else low.get(key, 0)
            m.DISPATCHER_CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, high[key] - at))
        return True

    def _offsets(self, parts: list[TopicPartition], spec: OffsetSpec) -> dict[tuple[str, int], int]:
        futures = self.admin.list_offsets({tp: spec for tp in parts}, request_timeout=self.timeout)
        return {(tp.topic, tp.partition): f.result(self.timeout).offset for tp, f in futures.items()}

    def _committed(self, parts: list[TopicPartition]) -> dict[tuple[str, int], int]:
        request = ConsumerGroupTopicPartitions(self.dispatcher.group, parts)
        futures = self.admin.list_consumer_group_offsets([request], request_timeout=self.timeout)
        result = next(iter(futures.values())).result(self.timeout)
        return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions or []}

    def _run(self) -> None:
        # At once, then every ``every`` s; until the loop has partitions to report, every 0.5 s.
        while not self._stop.is_set():
            self._stop.wait(self.every if self.refresh() else min(self.every, 0.5))

    def start(self) -> LagMonitor:
        threading.Thread(target=self._run, name="consumer-lag", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()


class DispatcherCollector:
    """The consumer's own counters (``Dispatcher.metrics``), read when Prometheus scrapes."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def collect(self) -> Iterable[Any]:
        d = getattr(self.dispatcher, "metrics", None)
        if d is None:
            return
        values: dict[str, dict[tuple[str, ...], float]] = {
            "pipeline_dispatcher_commits": {(): getattr(d, "batches", 0)},
            "pipeline_dispatcher_batch_failures": {(): getattr(d, "batches_failed", 0)},
            "pipeline_dispatcher_dead_lettered_by_stage": {
                (stage,): n for stage, n in dict(getattr(d, "dead_lettered", {})).items()
            },
            "pipeline_dispatcher_redis_oom_refusals": {(): getattr(d, "redis_oom_refusals", 0)},
            "pipeline_dispatcher_paused": {
                (domain,): 1.0 if domain in list(getattr(d, "paused_domains", [])) else 0.0
                for domain in self.dispatcher.topics.values()
            },
            "pipeline_dispatcher_paused_seconds": {(): getattr(d, "paused_seconds_total", 0.0)},
            "pipeline_dispatcher_backlog": {
                (str(k),): float(v)
                for k, v in dict(getattr(d, "backlog", {})).items()
                if isinstance(v, int | float)
            },
        }
        for name, (kind, help_text, labels) in m.DISPATCHER_FAMILIES.items():
            cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            family = cls(name, help_text, labels=list(labels))
            for label_values, value in values.get(name, {}).items():
                family.add_metric([str(v) for v in label_values], float(value))
            yield family


# --- poller ------------------------------------------------------------------------------------
def _unix(ticks: int) -> float:
    return ticks / _TICKS_PER_SECOND  # the poller's ticks count from the Unix epoch


def observe_poll(domain: str, fetched: int, published: int, cursor_ticks: int | None) -> None:
    m.POLLER_ROWS.labels(domain).inc(fetched)
    m.POLLER_ROWS_PUBLISHED.labels(domain).inc(published)
    if cursor_ticks is not None:
        m.POLLER_CHECKPOINT.labels(domain).set(_unix(cursor_ticks))


class PollerCollector:
    def __init__(self, poller: Poller) -> None:
        self.poller = poller

    def collect(self) -> Iterable[Any]:
        family = GaugeMetricFamily(m.POLLER_CHECKPOINT_AGE, m.POLLER_CHECKPOINT_AGE_HELP, labels=["domain"])
        cursor = self.poller.cursor
        if cursor is not None:
            family.add_metric([self.poller.source.domain.value], max(0.0, time.time() - _unix(cursor.ticks)))
        yield family


def serve_poller(settings: Settings, poller: Poller) -> m.Endpoint | None:
    domain = poller.source.domain.value
    m.POLLER_ROWS.labels(domain)
    m.POLLER_ROWS_PUBLISHED.labels(domain)
    health = m.Health(checks={"kafka": kafka_check(settings)})
    return m.serve(
        "poller",
        settings.metrics_bind_address,
        settings.poller_metrics_port,
        health=health,
        collectors=[PollerCollector(poller)],
    )
