"""Issue 9: a partial batch is dispatched after ``DISPATCH_LINGER_MS``, not after the poll timeout.

One ``consume`` of a whole batch returns when the batch is full or the timeout ends, so under a
light load every record used to wait the full poll timeout (1 s) before it was dispatched.
"""

from __future__ import annotations

import json
import time

import pytest

from simulator import generate
from tests.integration.dispatch_rig import dispatch_rig

pytestmark = pytest.mark.integration


def _lines(n: int, seed: int) -> list[bytes]:
    return [json.dumps(e).encode() for e in generate.xact_events(n, attachments_per_event=0, seed=seed)]


def test_a_trickle_is_dispatched_after_the_linger_not_the_poll_timeout() -> None:
    with dispatch_rig() as rig:
        dispatcher = rig.dispatcher(dispatch_linger_ms=50)
        dispatcher.subscribe()
        try:
            rig.publish("xact", _lines(1, seed=11))  # warm-up: joins the group, gets partitions
            rig.drain(dispatcher, timeout=60)
            rig.publish("xact", _lines(10, seed=12))  # far fewer than a batch (500)
            time.sleep(0.5)  # the records reach the consumer's local queue
            took, read = [], 0
            while read < 10:
                started = time.perf_counter()
                stats = dispatcher.poll_once(timeout=5.0)
                took.append(time.perf_counter() - started)
                read += stats.read
                assert stats.read > 0, f"a poll came back empty after {took[-1]:.2f} s"
            # Each poll ended about one linger after its records were in hand, far from 5 s.
            assert max(took) < 1.0, took
        finally:
            dispatcher.close()


def test_a_backlog_still_fills_whole_batches() -> None:
    with dispatch_rig() as rig:
        dispatcher = rig.dispatcher(dispatch_linger_ms=50, dispatch_batch_size=100)
        dispatcher.subscribe()
        try:
            rig.publish("xact", _lines(1, seed=13))
            rig.drain(dispatcher, timeout=60)
            rig.publish("xact", _lines(300, seed=14))
            time.sleep(1.0)
            sizes = []
            while sum(sizes) < 300:
                sizes.append(dispatcher.poll_once(timeout=5.0).read)
            assert sizes[0] == 100, sizes  # a full batch at once, not a linger's worth
            assert sum(sizes) == 300
        finally:
            dispatcher.close()
