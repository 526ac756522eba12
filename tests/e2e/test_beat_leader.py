"""Two Beats, one leader (issue 8 item 4): two real ``celery -A tasks beat`` processes and a
maintenance worker on a harness Redis db. Only the lease holder sends ``pipeline.flush``; after
the leader's SIGKILL the standby sends within a minute; after a clean stop at once.

What is counted: the Beats' own "Sending due task" log lines (one per send) and the maintenance
worker's "received" lines for ``pipeline.flush`` (one per message that reached it).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tasks.beat import LEADER_KEY
from tests.e2e.test_faults import slow
from tests.harness import Harness

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

FLUSH_SENT = "Sending due task flush-staged-rows"
FLUSH_RECEIVED = "Task pipeline.flush["
BEATS = ("beat-a", "beat-b")


def _env(ttl: str | None) -> dict[str, str]:
    env = {
        "FLUSH_INTERVAL_SECONDS": "1",
        "SWEEP_INTERVAL_SECONDS": "2",
        "BEAT_METRICS_PORT": "0",  # two Beats on one host
        "WORKER_METRICS_PORT": "0",
    }
    if ttl is not None:
        env["BEAT_LEADER_TTL_SECONDS"] = ttl
    return env


def _count(h: Harness, name: str, needle: str, suffix: str = "") -> int:
    """Log lines of process ``name`` that contain ``needle`` and end with ``suffix``."""
    path = h.log_dir / f"{name}.log"
    if not path.exists():
        return 0
    lines = path.read_text(errors="replace").splitlines()
    return sum(1 for line in lines if needle in line and line.rstrip().endswith(suffix))


def _received(h: Harness) -> int:
    """``pipeline.flush`` messages the maintenance worker took from its queue."""
    return _count(h, "worker-maintenance", FLUSH_RECEIVED, " received")


def _sent(h: Harness) -> dict[str, int]:
    return {name: _count(h, name, FLUSH_SENT) for name in BEATS}


def _leader(h: Harness) -> str:
    """The Beat whose pid the lease names (``host:pid:nonce``)."""
    raw = h.redis.get(LEADER_KEY)
    assert raw is not None, "no Beat holds the leader lease"
    pid = int(raw.decode().rsplit(":", 2)[1])
    return next(name for name in BEATS if h.procs[name].pid == pid)


def _wait(h: Harness, predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``predicate()`` held; TimeoutError (with the logs) otherwise."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}\n{h.logs()}")


def _one_sender_for(h: Harness, seconds: float) -> tuple[str, int]:
    """Watch ``seconds``: exactly one Beat sends flushes, at most one per interval; returns
    (sender, sends)."""
    before, received_before = _sent(h), _received(h)
    time.sleep(seconds)
    after, received_after = _sent(h), _received(h)
    sends = {name: after[name] - before[name] for name in BEATS}
    senders = [name for name, n in sends.items() if n > 0]
    assert len(senders) == 1, f"flush senders in {seconds} s: {sends}\n{h.logs()}"
    total = sum(sends.values())
    assert total <= seconds / 1.0 + 2, f"{total} flushes sent in {seconds} s at a 1 s interval"
    assert received_after - received_before <= seconds / 1.0 + 2, "the worker received duplicate flushes"
    return senders[0], total


@pytest.fixture
def two_beats(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
    h = Harness(tmp_path, extra_env=_env(getattr(request, "param", "6")))
    try:
        h.redis.flushdb()
        h.start_worker("maintenance", concurrency=1)
        for name in BEATS:
            h.start_beat(name)
        _wait(h, lambda: _received(h) >= 3, 60, "the first flushes")
        yield h
    finally:
        h.stop_all()


def test_two_beats__only_the_leader_sends_and_the_standby_takes_over_after_sigkill(
    two_beats: Harness,
) -> None:
    """Lease TTL 6 s: one sender while both run; after the leader's SIGKILL the other Beat leads and
    flushes reach the worker again well within a minute (at most 4/3 of the TTL plus a tick)."""
    h = two_beats
    leader, sends = _one_sender_for(h, 6)
    assert leader == _leader(h) and sends >= 3
    standby = next(name for name in BEATS if name != leader)
    sent_before, received_before = _sent(h)[standby], _received(h)

    h.kill(leader)
    took = _wait(
        h,
        lambda: _sent(h)[standby] > sent_before and _received(h) > received_before,
        60,
        "flushes from the standby Beat",
    )
    assert took < 6 * 4 / 3 + 3, f"takeover took {took:.1f} s"
    assert _leader(h) == standby
    assert h.procs[standby].poll() is None
    print(f"takeover after SIGKILL of the leader: {took:.1f} s (lease TTL 6 s)")


def test_two_beats__clean_stop_hands_over_at_once(two_beats: Harness) -> None:
    """SIGTERM: the leader deletes its lease on the way out, the standby leads at its next attempt."""
    h = two_beats
    leader = _leader(h)
    standby = next(name for name in BEATS if name != leader)
    sent_before = _sent(h)[standby]
    os.killpg(h.procs[leader].pid, signal.SIGTERM)
    h.procs[leader].wait(30)
    took = _wait(h, lambda: _sent(h)[standby] > sent_before, 30, "flushes from the standby Beat")
    assert took < 6 / 3 + 3, f"hand-over after a clean stop took {took:.1f} s"
    assert _leader(h) == standby


@slow
@pytest.mark.parametrize("two_beats", [None], indirect=True)
def test_two_beats__default_lease__leadership_moves_twice_within_a_minute_each(two_beats: Harness) -> None:
    """Default TTL (30 s): the leader is SIGKILLed, the standby leads within a minute; the killed Beat
    comes back as standby, then the new leader is SIGKILLed and leadership returns within a minute."""
    h = two_beats
    for _round in range(2):
        leader, _ = _one_sender_for(h, 5)
        standby = next(name for name in BEATS if name != leader)
        sent_before = _sent(h)[standby]
        h.kill(leader)
        took = _wait(h, lambda s=standby, b=sent_before: _sent(h)[s] > b, 90, "flushes from the standby Beat")
        assert took < 60, f"takeover took {took:.1f} s"
        print(f"takeover after SIGKILL (default lease): {took:.1f} s")
        h.start_beat(leader)  # back as the standby
        time.sleep(3)
        _one_sender_for(h, 5)
        assert _leader(h) == standby
