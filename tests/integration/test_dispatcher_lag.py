"""The consumer-lag gauge follows the broker while backpressure pauses intake (it is measured from
the broker's offsets, not from librdkafka's cache, which only fetches refresh, so it read low while
the partitions were paused), and measuring it never stops the consume loop: it runs on a thread and
a connection of its own (asked on the consumer's connection, each query waited behind the long-poll
fetch, about 500 ms per partition)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from prometheus_client import REGISTRY

from dispatcher.consumer import BatchStats
from dispatcher.monitoring import LagMonitor, observe_batch
from simulator import generate
from tests.integration.dispatch_rig import dispatch_rig

pytestmark = pytest.mark.integration


def _lag(topic: str) -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "pipeline_dispatcher_consumer_lag"
        for sample in metric.samples
        if sample.labels.get("topic") == topic
    )


@contextmanager
def _dispatched_one(events: int, seed: int) -> Iterator[tuple[Any, Any, list[bytes]]]:
    """A rig and its dispatcher that has dispatched the first of ``events`` xact events; yields
    (rig, dispatcher, the other events' lines, not yet published)."""
    lines = [json.dumps(e).encode() for e in generate.xact_events(events, attachments_per_event=0, seed=seed)]
    with dispatch_rig() as rig:
        dispatcher = rig.dispatcher()
        dispatcher.subscribe()
        try:
            rig.publish("xact", lines[:1])
            rig.drain(dispatcher, timeout=60)
            yield rig, dispatcher, lines[1:]
        finally:
            dispatcher.close()


def test_lag_counts_records_that_arrive_while_the_partitions_are_paused() -> None:
    with _dispatched_one(6, seed=21) as (rig, dispatcher, rest):
        consumer = dispatcher.consumer
        consumer.pause(consumer.assignment())  # what backpressure does
        rig.publish("xact", rest)
        for _ in range(3):
            assert dispatcher.poll_once(timeout=0.2).read == 0  # paused: nothing read
        observe_batch(dispatcher, BatchStats(), 0.0)  # what the loop does after every turn
        assert LagMonitor(dispatcher).refresh()
        assert _lag(rig.topics["xact"]) == 5


def test_measuring_the_lag_does_not_wait_behind_the_consumers_fetch() -> None:
    """The consumer idles in a long-poll fetch on every partition; a refresh of all of them still
    takes far less than one ``fetch.wait.max.ms`` (500 ms), and the next record is dispatched
    while refreshes run back to back on the monitor's thread."""
    with _dispatched_one(2, seed=22) as (rig, dispatcher, rest):
        for _ in range(5):  # idle turns: the fetches now wait at the broker
            dispatcher.poll_once(timeout=0.2)
        observe_batch(dispatcher, BatchStats(), 0.0)
        parts = len(dispatcher.consumer.assignment())
        assert parts >= 2
        monitor = LagMonitor(dispatcher, every=0.0)
        started = time.perf_counter()
        assert monitor.refresh()
        assert time.perf_counter() - started < 0.4, f"{parts} partitions"
        monitor.start()  # refreshes back to back
        try:
            rig.publish("xact", rest)
            started = time.perf_counter()
            read = 0
            while read == 0 and time.perf_counter() - started < 10:
                read = dispatcher.poll_once(timeout=0.2).read
            assert read == 1
            assert time.perf_counter() - started < 1.0
        finally:
            monitor.stop()
