"""``ops.status.queue_depths`` reads a big keyspace in one pass: a busy pipeline holds a
dispatch-ledger key per event of the last 24 h, and a scan per queue name in Redis's default steps
of 10 took tens of thousands of round trips (``pipeline status``, ``make run``'s idle wait)."""

from __future__ import annotations

import pytest
import redis

from ops.status import queue_depths

pytestmark = pytest.mark.integration


@pytest.fixture()
def own_broker_db() -> int:
    return 10


def _scan_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0))


def test_depths_are_right_and_the_keyspace_is_scanned_once(own_broker: redis.Redis) -> None:
    pipe = own_broker.pipeline(transaction=False)
    for i in range(20_000):
        pipe.set(f"pipeline:dispatched:xact:{i}", 1)
    pipe.rpush("xact.download", *range(3))
    pipe.rpush("xact.download\x06\x169", *range(2))  # a priority list of the same queue
    pipe.rpush("xact.upload.host.h1", 1)  # a host-local queue nobody declared
    pipe.set("not.a.queue", 1)
    pipe.execute()

    before = _scan_calls(own_broker)
    depths = queue_depths(own_broker)
    calls = _scan_calls(own_broker) - before

    assert depths["xact.download"] == 5
    assert depths["xact.upload.host.h1"] == 1
    assert depths["claimx.enrich"] == 0  # every registered queue is listed
    assert "not.a.queue" not in depths
    assert calls < 100, calls  # one pass in steps of 1,000 (was ~2,000 calls per queue name)
