"""The consumer-lag gauge follows the broker while backpressure pauses intake: it is refreshed on
every turn of the loop (empty polls included) from the broker's high watermarks, not from
librdkafka's cache, which only fetches refresh (so it read low while the partitions were paused)."""

from __future__ import annotations

import json
import time

import pytest
from prometheus_client import REGISTRY

from dispatcher.monitoring import update_lag
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


def test_lag_counts_records_that_arrive_while_the_partitions_are_paused() -> None:
    lines = [json.dumps(e).encode() for e in generate.xact_events(6, attachments_per_event=0, seed=21)]
    with dispatch_rig() as rig:
        dispatcher = rig.dispatcher()
        dispatcher.subscribe()
        try:
            rig.publish("xact", lines[:1])
            rig.drain(dispatcher, timeout=60)
            consumer = dispatcher.consumer
            consumer.pause(consumer.assignment())  # what backpressure does
            rig.publish("xact", lines[1:])
            for _ in range(3):
                assert dispatcher.poll_once(timeout=0.2).read == 0  # paused: nothing read
            update_lag(dispatcher, time.time(), every=0)
            assert _lag(rig.topics["xact"]) == 5
        finally:
            dispatcher.close()
