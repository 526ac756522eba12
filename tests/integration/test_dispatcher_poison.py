"""Issue 7 item 1: no record stops the dispatcher (real Kafka topics, real Redis).

Each record below was verified to stop the dispatcher for good before the fix: the exception left
``poll_once``, nothing was committed, and every restart read the same batch again. Now parsing and
planning fail per record: the record goes to ``{domain}.events.dlq`` with its reason, the rest of
the batch is dispatched and the offsets move past all of them.
"""

from __future__ import annotations

import json

import pytest

from simulator import generate
from tests.integration.dispatch_rig import DispatchRig, dispatch_rig

pytestmark = pytest.mark.integration


def _xact(trace: str, **changes: object) -> bytes:
    row = generate.xact_events(1, attachments_per_event=1, seed=7)[0]
    row["traceId"] = trace
    row.update(changes)
    return json.dumps(row).encode()


def _claimx(project: str, **changes: object) -> bytes:
    row = generate.claimx_events(1, seed=3)[0]
    row["projectId"] = project
    row.update(changes)
    return json.dumps(row).encode()


def _deep_xact(trace: str, depth: int) -> bytes:
    """``data`` nested ``depth`` lists deep: parses, but planning serialises it again one level down."""
    head = _xact(trace)[:-2]  # drop the closing "}}" of data and of the row
    return head + b',"deep":' + b"[" * depth + b"]" * depth + b"}}"


def _run(rig: DispatchRig):
    dispatcher = rig.dispatcher()
    dispatcher.consumer.subscribe(list(dispatcher.topics))
    totals = {"read": 0, "dispatched": 0, "dead_lettered": 0, "duplicates": 0}
    try:

        def _caught_up() -> bool:
            return rig.lag() == 0

        import time

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            stats = dispatcher.poll_once(timeout=0.5)
            for name in totals:
                totals[name] += getattr(stats, name)
            if stats.read == 0 and _caught_up():
                return totals
        raise AssertionError(f"not caught up: lag {rig.lag()}, {totals}")
    finally:
        dispatcher.close()


def test_records_that_stopped_the_dispatcher_are_dead_lettered_and_the_batch_goes_on() -> None:
    with dispatch_rig() as rig:
        xact = [
            _xact("ok-1"),
            _xact("edge-low", utcDateTime="0001-01-01T00:00:00+01:00"),
            _xact("edge-high", utcDateTime="9999-12-31T23:59:59-01:00"),
            *[_deep_xact(f"deep-{d}", d) for d in range(900, 1000, 2)],
            _xact("ok-2"),
        ]
        rig.publish("xact", xact)
        claimx = [_claimx("5000001"), _claimx("5000002", IngestionTime=int("9" * 400)), _claimx("5000003")]
        rig.publish("claimx", claimx)
        # A record timestamp in the year 10000 (no ingestion time in the row: the timestamp is used).
        rig.publish("claimx", [_claimx("5000004", IngestionTime=None)], timestamp_ms=253_402_300_800_000 + 1)
        totals = _run(rig)
        assert totals["read"] == len(xact) + len(claimx) + 1
        assert totals["read"] == totals["dispatched"] + totals["dead_lettered"] + totals["duplicates"]
        letters = rig.dlq("xact", expect=totals["dead_lettered"]) + rig.dlq("claimx")
        assert len(letters) == totals["dead_lettered"]
        for letter in letters:
            assert letter.headers["error"], letter.headers
            assert letter.headers["error_type"]
            assert letter.headers["stage"] in (b"parse", b"plan")
        # The valid events of the same batches were dispatched: their ids are in the ledger.
        assert totals["dispatched"] >= 4
        assert rig.lag() == 0
        # Some depth in the range gets past parsing and fails while planning (the case).
        assert any(letter.headers["stage"] == b"plan" for letter in letters), [
            (letter.headers["error_type"], letter.headers["stage"]) for letter in letters
        ]
