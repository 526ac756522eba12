"""Workers survive a broker restart (issue 8 item 5; the seam fix is tasks/kombu_fixes.py).

A private ``redis-server`` (AOF on, own port and data dir) is the broker; the whole pipeline runs
as real processes under load with no supervisor. The broker is SIGKILLed twice while downloads are
in flight and restarted on its data. Every process that ran before still runs, each worker consumes
new work afterwards, and every event and attachment lands exactly once.

The crash needs a worker that holds unacknowledged tasks, has a ``BRPOP`` outstanding, and learns
of the loss from another socket first (see tasks/kombu_fixes.py). A plain SIGKILL gets that order
by chance (about one worker-kill in thirty here: the long variant). The short variant makes it
certain: it drops the broker's pub/sub connections (the workers' remote-control ``LISTEN``
sockets) and freezes the server (SIGSTOP) at once, so the outstanding ``BRPOP`` never answers while
the worker tears its connection down, then SIGKILLs the frozen server: a broker that hangs, then
dies.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from domains.names import Table
from simulator import generate
from tests.e2e.test_faults import (
    FILES_PREFIX,
    SHORT_VISIBILITY,
    PrivateRedis,
    _downloads_in_flight,
    assert_each_event_and_attachment_exactly_once,
    file_requests,
    lines,
    running_pipeline,
    slow,
    wait_for,
)
from tests.harness import Harness

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

#: celery.worker.consumer.consumer.COLLECT_SOCKET_TIMEOUT: how long a worker's teardown waits on a socket.
COLLECT_SOCKET_TIMEOUT_SECONDS = 5.0


def _crash_broker(broker: PrivateRedis, *, freeze_first: bool, down_seconds: float) -> None:
    """SIGKILL the broker and restart it on its data (same port, same AOF) after ``down_seconds``."""
    assert broker.proc is not None
    if freeze_first:
        with redis.Redis(port=broker.port) as admin:
            admin.client_kill_filter(_type="pubsub")
        broker.proc.send_signal(signal.SIGSTOP)
        time.sleep(COLLECT_SOCKET_TIMEOUT_SECONDS + 1)  # the workers' teardown reads time out
    broker.stop(signal.SIGKILL)
    time.sleep(down_seconds)
    broker.start()


def _assert_everyone_alive(h: Harness, pids: dict[str, int]) -> None:
    for name, pid in pids.items():
        proc = h.procs[name]
        assert proc.pid == pid and proc.poll() is None, f"{name} exited after the broker restart\n{h.logs()}"
    crashes = [
        f"{log.name}: {line}"
        for log in sorted(h.log_dir.glob("*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if "Unrecoverable error" in line
    ]
    assert not crashes, crashes


def _assert_consuming_after(h: Harness, xact_before: list[dict[str, Any]], seed: int) -> None:
    """New xact and claimx work after the restarts reaches every worker group and completes once."""
    xact_after = generate.xact_events(2, attachments_per_event=1, file_size=4096, seed=seed + 1000)
    claimx_rows = generate.claimx_events(6, projects=1, seed=seed)
    h.publish_lines("xact", lines(xact_after))
    h.publish_lines("claimx", lines(claimx_rows))
    h.wait_idle(timeout=240)
    assert_each_event_and_attachment_exactly_once(h, xact_before + xact_after)
    claimx_events = h.table(Table.CLAIMX_EVENTS)
    assert claimx_events.height == claimx_events["event_id"].n_unique() == len(claimx_rows)


@slow  # 90 s; `make test` keeps a redis-server SIGKILL in tests/e2e/test_chaos_short.py
def test_broker_sigkilled_twice_under_load__workers_reconnect_and_nothing_is_lost(tmp_path: Path) -> None:
    """Two rounds: two downloads in flight on a worker with spare slots (so it also waits in
    ``BRPOP``), then the broker hangs and is SIGKILLed; the worker must reconnect by itself."""
    first = generate.xact_events(2, attachments_per_event=1, file_size=16 * 1024, seed=51)
    second = generate.xact_events(2, attachments_per_event=1, file_size=16 * 1024, seed=52)
    with running_pipeline(tmp_path, SHORT_VISIBILITY, concurrency={"xact": 4}) as (h, broker):
        pids = {name: proc.pid for name, proc in h.procs.items()}
        h.sim("POST", "/_sim/faults", {"rule": {"path_prefix": FILES_PREFIX, "delay_seconds": 10}})
        for requested, rows in ((2, first), (4, second)):
            h.publish_lines("xact", lines(rows))
            wait_for(h, lambda n=requested: file_requests(h) >= n, 90, f"{requested} downloads in flight")
            _crash_broker(broker, freeze_first=True, down_seconds=1.0)
        h.sim("DELETE", "/_sim/faults")
        h.wait_idle(timeout=300)  # tasks cut off by a crash return after the visibility timeout
        _assert_everyone_alive(h, pids)
        assert_each_event_and_attachment_exactly_once(h, first + second)
        _assert_consuming_after(h, first + second, seed=51)
        _assert_everyone_alive(h, pids)


@slow
def test_broker_sigkilled_repeatedly_under_load__workers_reconnect_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    """Long variant: 100 events x 2 attachments, six plain SIGKILLs at seeded moments, down for
    0-3 s each, some back to back (killed again while the workers reconnect)."""
    rnd = random.Random(52)
    rows = generate.xact_events(100, attachments_per_event=2, file_size=16 * 1024, seed=52)
    with running_pipeline(tmp_path, SHORT_VISIBILITY, concurrency={"xact": 4}) as (h, broker):
        pids = {name: proc.pid for name, proc in h.procs.items()}
        h.sim("POST", "/_sim/faults", {"rule": {"path_prefix": FILES_PREFIX, "delay_seconds": 0.3}})
        h.publish_lines("xact", lines(rows))
        wait_for(h, _downloads_in_flight(h, requested=6, done=4), 90, "downloads in flight")
        for _ in range(6):
            time.sleep(rnd.uniform(0.5, 5.0))
            _crash_broker(broker, freeze_first=False, down_seconds=rnd.uniform(0.0, 3.0))
        h.wait_idle(timeout=600)
        _assert_everyone_alive(h, pids)
        assert_each_event_and_attachment_exactly_once(h, rows)
        _assert_consuming_after(h, rows, seed=52)
        _assert_everyone_alive(h, pids)
