"""The Beat leader lease and the single-run guard against real Redis (tasks/beat.py)."""

from __future__ import annotations

import time

import pytest
import redis

from ops.localrun import free_port
from tasks.beat import SEND_WINDOW_SHARE, BeatLeadership, single_run

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _pair(client: redis.Redis, key: str, ttl: float, clock: Clock) -> tuple[BeatLeadership, BeatLeadership]:
    return (
        BeatLeadership(client, ttl_seconds=ttl, key=key, identity="host-a:1", clock=clock),
        BeatLeadership(client, ttl_seconds=ttl, key=key, identity="host-b:2", clock=clock),
    )


def test_leadership__first_beat_leads_the_second_stands_by(redis_client: redis.Redis, prefix: str) -> None:
    a, b = _pair(redis_client, f"{prefix}:leader", 30, Clock())
    assert a.maintain() is True
    assert b.maintain() is False
    assert redis_client.get(f"{prefix}:leader").decode() == a.token
    assert a.token.startswith("host-a:1:")


def test_leadership__send_window_ends_before_the_key_expires(redis_client: redis.Redis, prefix: str) -> None:
    """The leader may send only inside SEND_WINDOW_SHARE of the TTL, measured from before the
    command was sent; the key lives the whole TTL: no standby can lead while it still sends."""
    clock = Clock()
    a, _b = _pair(redis_client, f"{prefix}:leader", 30, clock)
    assert a.maintain()
    assert redis_client.pttl(f"{prefix}:leader") > SEND_WINDOW_SHARE * 30_000
    clock.now += SEND_WINDOW_SHARE * 30 - 0.01
    assert a.is_leader
    clock.now += 0.02
    assert not a.is_leader


def test_leadership__leader_renews_and_keeps_leading(redis_client: redis.Redis, prefix: str) -> None:
    clock = Clock()
    a, b = _pair(redis_client, f"{prefix}:leader", 30, clock)
    for _ in range(10):  # 10 renewals = 100 s, far past one TTL
        assert a.maintain()
        assert not b.maintain()
        clock.now += a.renew_every_seconds
    assert redis_client.get(f"{prefix}:leader").decode() == a.token


def test_leadership__standby_takes_over_once_the_dead_leaders_key_expired(
    redis_client: redis.Redis, prefix: str
) -> None:
    """A leader that stops renewing (killed): its key expires after the TTL, the standby's next
    attempt takes it."""
    a, b = _pair(redis_client, f"{prefix}:leader", 0.6, Clock())
    b._clock = time.monotonic  # b attempts in real time
    assert a.maintain()
    assert not b.maintain()
    deadline = time.monotonic() + 3
    while not b.maintain():
        assert time.monotonic() < deadline, "standby never took the expired lease"
        time.sleep(0.05)
    assert redis_client.get(f"{prefix}:leader").decode() == b.token


def test_leadership__release_hands_over_at_the_next_attempt(redis_client: redis.Redis, prefix: str) -> None:
    clock = Clock()
    a, b = _pair(redis_client, f"{prefix}:leader", 30, clock)
    assert a.maintain() and not b.maintain()
    a.release()
    assert not a.is_leader
    clock.now += b.renew_every_seconds
    assert b.maintain()


def test_leadership__release_never_deletes_another_beats_lease(
    redis_client: redis.Redis, prefix: str
) -> None:
    clock = Clock()
    a, b = _pair(redis_client, f"{prefix}:leader", 30, clock)
    assert a.maintain()
    b.release()
    assert redis_client.get(f"{prefix}:leader").decode() == a.token


def test_leadership__unreachable_redis_means_standby_not_a_crash() -> None:
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5)
    lease = BeatLeadership(client, ttl_seconds=30, key="pipeline:beat:leader")
    assert lease.maintain() is False
    lease.release()


def test_single_run__a_second_run_skips_while_the_first_holds_the_job(
    redis_client: redis.Redis, prefix: str
) -> None:
    job = f"{prefix}-sweep"
    with single_run(redis_client, job) as first:
        assert first is True
        with single_run(redis_client, job) as second:
            assert second is False
    with single_run(redis_client, job) as again:
        assert again is True
    assert not redis_client.keys(f"pipeline:lock:job:{job}")
