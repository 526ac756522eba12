"""Two Beats, one leader: Beat may run on several hosts, exactly one sends at a time (issue 8 item 4).

``celery -A tasks beat`` uses :class:`LeaderScheduler` (``beat_scheduler`` in ``celeryconfig``).
Every Beat ticks its schedule as usual, so each one's schedule stays in step with the clock, but only
the holder of the leader lease *sends*. The lease is one Redis key, ``pipeline:beat:leader``, whose
value names the holder (``host:pid:nonce``, readable with ``redis-cli GET``).

Contract (``ttl`` = ``BEAT_LEADER_TTL_SECONDS``):

* **At most one sender.** A Beat takes the key with an atomic "set if absent, or extend if mine"
  and then sends only until ``started + 0.8 × ttl``, where ``started`` is read *before* the command
  went out: its right to send always ends before the key can expire in Redis, so a standby that
  takes the expired key never overlaps with it.
* **Renewal inside the TTL.** The leader renews every ``ttl / 3``; the tick sleeps at most that
  long, so renewal never waits for the next due entry. A leader that cannot reach Redis stops
  sending when its deadline passes, and then stands by like any other Beat.
* **Takeover.** A standby tries every ``ttl / 3``: after a leader's death (SIGKILL, lost host) it
  leads within ``ttl + ttl / 3`` (40 s by default), after a clean shutdown (the leader deletes the
  key in ``close``) within ``ttl / 3``.

Scheduled work itself stays safe when two sends do happen (a manual ``pipeline flush`` next to
Beat's, a message redelivered): each table flush holds its table's lock (``writers.lock``), and
``pipeline.sweep`` runs under :func:`single_run`.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import cached_property
from typing import Any

import redis
from celery.beat import PersistentScheduler

from core.keys import PREFIX
from core.redis_client import redis_client
from core.settings import get_settings
from writers.lock import LockKeeper

log = logging.getLogger("pipeline.beat")

LEADER_KEY = f"{PREFIX}:beat:leader"
#: The leader sends only during this share of the TTL after the renewal started: the rest covers
#: the renewal's own round trip and clock-rate drift between the hosts and Redis.
SEND_WINDOW_SHARE = 0.8

# Take the key when it is free, extend it when it is ours; 1 = leading, 0 = someone else leads.
_ACQUIRE_OR_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == false then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
return 0
"""
_RELEASE_IF_MINE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class BeatLeadership:
    """The leader lease of one Beat process, independent of Celery.

    :meth:`maintain` acquires or renews when due and says whether this process may send now;
    :meth:`release` gives the lease up (clean shutdown). Redis errors never escape: a Beat that
    cannot reach Redis simply stops leading when its send window ends.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl_seconds: float,
        key: str = LEADER_KEY,
        identity: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._r = client
        self.key = key
        self.ttl_seconds = float(ttl_seconds)
        self.renew_every_seconds = self.ttl_seconds / 3
        self.token = f"{identity or f'{socket.gethostname()}:{os.getpid()}'}:{uuid.uuid4().hex[:8]}"
        self._clock = clock
        self._send_until = 0.0
        self._next_attempt = 0.0
        self._acquire = client.register_script(_ACQUIRE_OR_RENEW)
        self._release = client.register_script(_RELEASE_IF_MINE)
        self._was_leader = False
        self._last_holder: str | None = None

    @property
    def is_leader(self) -> bool:
        """True while this process may send (inside its send window)."""
        return self._clock() < self._send_until

    def maintain(self) -> bool:
        """Acquire or renew if ``renew_every_seconds`` passed since the last attempt; return
        :attr:`is_leader`."""
        now = self._clock()
        if now >= self._next_attempt:
            self._next_attempt = now + self.renew_every_seconds
            self._attempt(now)
        leading = self.is_leader
        if leading != self._was_leader:
            self._was_leader = leading
            if leading:
                log.info("beat: leading (lease %s, %s)", self.key, self.token)
            else:
                log.warning("beat: no longer leading; standing by (lease %s)", self.key)
        return leading

    def release(self) -> None:
        """Delete the key if it is still ours, so a standby takes over at its next attempt."""
        self._send_until = 0.0
        try:
            self._release(keys=[self.key], args=[self.token])
        except redis.RedisError as exc:  # it expires by itself after ttl
            log.warning("beat: could not release the leader lease: %s", type(exc).__name__)

    def _attempt(self, started: float) -> None:
        try:
            won = self._acquire(keys=[self.key], args=[self.token, int(self.ttl_seconds * 1000)])
        except redis.RedisError as exc:
            # Keep the current window: the key may still be ours until it expires.
            log.warning("beat: leader lease not renewed: %s", type(exc).__name__)
            return
        if won:
            self._send_until = started + SEND_WINDOW_SHARE * self.ttl_seconds
            return
        self._send_until = 0.0
        self._note_holder()

    def _note_holder(self) -> None:
        try:
            raw = self._r.get(self.key)
        except redis.RedisError:
            return
        holder = raw.decode() if isinstance(raw, bytes) else raw
        if holder and holder != self._last_holder:
            self._last_holder = holder
            log.info("beat: standing by; %s leads", holder)


class LeaderScheduler(PersistentScheduler):
    """Celery's default scheduler (``celerybeat-schedule`` shelve file) that sends only while it
    holds the leader lease; see the module docstring for the contract."""

    @cached_property
    def leadership(self) -> BeatLeadership:
        settings = get_settings()
        # Short socket timeouts: a hung Redis must not stall the tick past the send window.
        client = redis_client(settings, socket_timeout=5, socket_connect_timeout=5)
        return BeatLeadership(client, ttl_seconds=settings.beat_leader_ttl_seconds)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        self.leadership.maintain()
        interval = super().tick(*args, **kwargs)
        return min(interval, self.leadership.renew_every_seconds)

    def apply_entry(self, entry: Any, producer: Any = None) -> None:
        # The entry was already advanced by ``tick`` (``reserve``), leader or not: a standby's
        # schedule thus stays in step, and on takeover it sends what is due, not a backlog.
        if not self.leadership.maintain():
            log.debug("beat: standby, not sending %s", entry.name)
            return
        super().apply_entry(entry, producer=producer)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if "leadership" in self.__dict__:
                self.leadership.release()

    @property
    def info(self) -> str:
        ttl = get_settings().beat_leader_ttl_seconds
        return f"{super().info}\n    . leader lease -> {LEADER_KEY} (ttl {ttl:g} s)"


@contextmanager
def single_run(client: redis.Redis, job: str, *, ttl_seconds: float = 60.0) -> Iterator[bool]:
    """Run a scheduled job at most once at a time across all workers.

    Yields ``True`` when this caller holds the job's lock (kept alive while the block runs, freed
    ``ttl_seconds`` after a holder died), ``False`` when another run holds it: the caller then
    skips, since that run does the same work.
    """
    lock = client.lock(f"{PREFIX}:lock:job:{job}", timeout=ttl_seconds, thread_local=False)
    if not lock.acquire(blocking=False):
        yield False
        return
    keeper = LockKeeper(lock, ttl_seconds / 3)
    try:
        yield True
    finally:
        keeper.stop()
        # Expired or unreachable: the lock frees itself after ttl_seconds.
        with suppress(redis.RedisError):
            lock.release()
