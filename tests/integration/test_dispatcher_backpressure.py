"""Issue 11: the dispatcher pauses a domain whose stage backlog is above its mark, and only that one.

Real Kafka and Redis; the backlog is made the way a stopped worker makes it (messages waiting in a
stage queue). While paused the dispatcher keeps polling, stays in its group, and partitions it is
assigned in a rebalance start paused; it resumes below the low-water mark.
"""

from __future__ import annotations

import json
import time

import pytest

from dispatcher.backpressure import read_states
from ops.report import render_status
from ops.status import collect_status
from simulator import generate
from tests.integration.dispatch_rig import dispatch_rig

pytestmark = pytest.mark.integration


def _xact(n: int, seed: int) -> list[bytes]:
    return [json.dumps(r).encode() for r in generate.xact_events(n, attachments_per_event=1, seed=seed)]


def _claimx(n: int, seed: int) -> list[bytes]:
    return [json.dumps(r).encode() for r in generate.claimx_events(n, seed=seed)]


def _poll_for(dispatcher, seconds: float) -> int:
    read = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        read += dispatcher.poll_once(timeout=0.2).read
    return read


def test_a_slow_stage_pauses_its_domain_only_and_rebalanced_partitions_stay_paused() -> None:
    env = {
        "BACKPRESSURE_HIGH_WATER": "100",
        "BACKPRESSURE_LOW_WATER": "50",
        "BACKPRESSURE_CHECK_INTERVAL_MS": "50",
    }
    with dispatch_rig(**env) as rig:
        # Uploads back up (downloads and writes keep up): xact's upload queue is over the mark.
        rig.redis.rpush("xact.upload", *[b"{}"] * 150)
        a = rig.dispatcher()
        a.subscribe()
        try:
            rig.publish("xact", _xact(30, seed=51))
            rig.publish("claimx", _claimx(30, seed=52))
            _poll_for(a, 8)
            assert a.backpressure.paused == {"xact": "queue xact.upload"}
            assert rig.lag(("claimx",)) == 0, "claimx intake must go on"
            assert rig.lag(("xact",)) == 30, "xact records must wait in Kafka"
            (state,) = read_states(rig.redis)
            assert state["state"] == "paused" and state["backlog"]["xact.upload"] == 150
            status = collect_status(rig.settings, rig.redis)  # what `pipeline status` shows
            assert status.to_json()["dispatchers"][0]["paused"] == {"xact": "queue xact.upload"}
            assert "paused (xact: queue xact.upload)" in render_status(status)
            # A second member joins (it measures the same backlog, so it pauses xact too) and
            # leaves: xact partitions move to it and come back to A, which must hold them paused.
            b = rig.dispatcher()
            xact_topic = rig.topics["xact"]
            b.consumer.subscribe([xact_topic], on_assign=b._on_assign)  # so xact partitions move to B
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(
                tp.topic == xact_topic for tp in b.consumer.assignment()
            ):
                b.poll_once(timeout=0.2)
                a.poll_once(timeout=0.2)
            assert any(tp.topic == xact_topic for tp in b.consumer.assignment())
            assert b.backpressure.paused.get("xact")
            b.close()
            deadline = time.monotonic() + 30
            while (
                time.monotonic() < deadline
                and len([tp for tp in a.consumer.assignment() if tp.topic == xact_topic]) < 3
            ):
                a.poll_once(timeout=0.2)
            assert len([tp for tp in a.consumer.assignment() if tp.topic == xact_topic]) == 3
            assert _poll_for(a, 5) == 0
            assert rig.lag(("xact",)) == 30
            # The stage catches up: below the low-water mark intake resumes.
            rig.redis.ltrim("xact.upload", 0, 9)
            deadline = time.monotonic() + 20
            while rig.lag(("xact",)) and time.monotonic() < deadline:
                a.poll_once(timeout=0.2)
            assert rig.lag(("xact",)) == 0
            assert not a.backpressure.paused
            assert a.metrics.pauses == 1 and a.metrics.paused_seconds_total > 0
        finally:
            a.close()
        assert read_states(rig.redis) == []  # a closed dispatcher removes its state record


def test_disabled_backpressure_measures_nothing() -> None:
    with dispatch_rig(BACKPRESSURE_ENABLED="false") as rig:
        rig.redis.rpush("xact.upload", *[b"{}"] * 20_000)
        d = rig.dispatcher()
        d.subscribe()
        try:
            rig.publish("xact", _xact(10, seed=53))
            rig.drain(d)
            assert d.metrics.backpressure_checks == 0 and not d.backpressure.paused
        finally:
            d.close()
