"""Backpressure: Kafka stays the buffer, Redis holds a bounded amount of work (issue 11).

The dispatcher pauses a domain's assigned partitions when that domain's backlog in Redis is above
its high-water mark and resumes them once it is below the low-water mark. What counts:

* per domain: the messages waiting in each of its stage queues (``{domain}.{stage}``; one slow
  stage is enough to pause) and its staged rows not yet flushed (``pipeline:stage:{table}`` and
  the claimed ``:batch`` of each of its tables);
* shared by all domains: tasks delivered but not acknowledged (Celery's ``unacked`` hash: running
  and prefetched), retries waiting in the durable schedule (``pipeline:schedule:due``), attachment
  chains in flight
  (``pipeline:pending:index``, which also covers host-local upload queues) and Redis memory
  (``used_memory`` against ``maxmemory``).

One pipelined round trip measures all of it. The controller measures at most every
``BACKPRESSURE_CHECK_INTERVAL_MS``, and sooner only when the messages enqueued since the last
measurement could have crossed the high-water mark: the backlog then never exceeds the mark by
more than one dispatch batch, and a dispatcher far below its marks pays one round trip per interval.

A write refused by Redis for memory (``OOM ... maxmemory``) pauses every domain until memory is
below the low-water ratio again (or, when Redis does not say its ``maxmemory``, after a backoff
of 1 s doubling to 30 s).

:class:`DispatcherMetrics` holds every counter and gauge of one dispatcher in one plain object (the
metrics exporter reads it); :meth:`Backpressure.state_record` is what ``pipeline status`` shows.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from core import keys
from core.settings import Settings

#: Hash of the live dispatchers' state records: field = member id, value = JSON.
STATE_KEY = "pipeline:dispatchers"
PENDING_INDEX = keys.PENDING_INDEX
STAGE_PREFIX = keys.STAGE_PREFIX
#: The state record is rewritten at most this often (and whenever the state changes).
STATE_EVERY_SECONDS = 2.0


@dataclass
class DispatcherMetrics:
    """Counters (monotonic) and gauges (last value) of one dispatcher process."""

    batches: int = 0
    batches_failed: int = 0
    records_read: int = 0
    events_dispatched: int = 0
    duplicates_skipped: int = 0
    dead_lettered: dict[str, int] = field(default_factory=lambda: {"parse": 0, "plan": 0, "enqueue": 0})
    dlq_delivery_failures: int = 0
    durability_waits: int = 0
    durability_failures: int = 0
    redis_oom_refusals: int = 0
    backpressure_checks: int = 0
    backpressure_seconds: float = 0.0
    """Time spent deciding (measuring included): the whole cost of backpressure to the dispatcher."""
    pauses: int = 0
    paused_seconds_total: float = 0.0
    paused_domains: list[str] = field(default_factory=list)
    backlog: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Marks:
    high: int
    low: int
    staged_high: int
    staged_low: int
    memory_high_ratio: float
    memory_low_ratio: float
    interval_seconds: float

    @classmethod
    def from_settings(cls, s: Settings) -> Marks:
        return cls(
            s.backpressure_high_water,
            s.backpressure_low_water,
            s.backpressure_staged_rows_high,
            s.backpressure_staged_rows_low,
            s.backpressure_memory_high_ratio,
            s.backpressure_memory_low_ratio,
            s.backpressure_check_interval_ms / 1000,
        )


@dataclass
class Backlog:
    queues: dict[str, dict[str, int]]
    """domain -> queue -> messages waiting."""
    staged: dict[str, int]
    """domain -> staged rows not yet committed."""
    unacked: int
    scheduled: int
    """Retries and circuit-open re-queues waiting in the durable schedule."""
    in_flight_chains: int
    used_memory: int
    maxmemory: int

    def largest_queue(self, domain: str) -> int:
        return max(self.queues.get(domain, {}).values(), default=0)


class BacklogProbe:
    """One pipelined round trip: queue lengths, staged rows, unacked, chains in flight, memory."""

    def __init__(self, client: redis.Redis, sources: dict[str, tuple[list[str], list[str]]]) -> None:
        """``sources``: domain -> (its stage queues, its tables)."""
        self._r = client
        self.domains = list(sources)
        self.queues = {d: queues for d, (queues, _tables) in sources.items()}
        self.stage_keys = {
            d: [k for t in tables for k in (f"{STAGE_PREFIX}:{t}", f"{STAGE_PREFIX}:{t}:batch")]
            for d, (_queues, tables) in sources.items()
        }

    def measure(self, state: tuple[str, str] | None = None) -> Backlog:
        pipe = self._r.pipeline(transaction=False)
        if state is not None:  # the previous decision, written in the same round trip
            pipe.hset(STATE_KEY, state[0], state[1])
        for d in self.domains:
            for q in self.queues[d]:
                pipe.llen(q)
            for k in self.stage_keys[d]:
                pipe.llen(k)
        pipe.hlen("unacked")
        pipe.zcard(keys.SCHEDULE_DUE)
        pipe.zcard(PENDING_INDEX)
        pipe.info("memory")
        results = pipe.execute(raise_on_error=False)
        if state is not None:
            results = results[1:]  # a refused state write (OOM) must not hide the measurement
        for r in results:
            if isinstance(r, Exception):
                raise r
        it = iter(results)
        queues = {d: {q: int(next(it)) for q in self.queues[d]} for d in self.domains}
        staged = {}
        for d in self.domains:
            staged[d] = sum(int(next(it)) for _ in self.stage_keys[d])
        unacked = int(next(it))
        scheduled = int(next(it))
        chains = int(next(it))
        memory = next(it)
        return Backlog(
            queues=queues,
            staged=staged,
            unacked=unacked,
            scheduled=scheduled,
            in_flight_chains=chains,
            used_memory=int(memory.get("used_memory", 0)),
            maxmemory=int(memory.get("maxmemory", 0)),
        )


class Backpressure:
    """Decides which domains are paused; the dispatcher applies it to its partitions."""

    def __init__(
        self,
        client: redis.Redis,
        settings: Settings,
        sources: dict[str, tuple[list[str], list[str]]],
        metrics: DispatcherMetrics,
        *,
        group: str,
    ) -> None:
        self.enabled = settings.backpressure_enabled
        self.marks = Marks.from_settings(settings)
        self.probe = BacklogProbe(client, sources)
        self.metrics = metrics
        self.member = f"{socket.gethostname()}:{os.getpid()}:{group}"
        self.group = group
        self.paused: dict[str, str] = {}  # domain -> reason
        self._paused_since: dict[str, float] = {}
        self._measured_at = float("-inf")
        self._since_measure: dict[str, int] = dict.fromkeys(sources, 0)
        self.last: Backlog | None = None
        self._oom_until = 0.0
        self._oom_backoff = 1.0
        self._oom = False
        self._state_written = float("-inf")
        self._state_dirty = True

    # -- what the dispatcher calls ------------------------------------------------------------
    def enqueued(self, domain: str, messages: int) -> None:
        self._since_measure[domain] = self._since_measure.get(domain, 0) + messages

    def note_oom(self) -> None:
        """Redis refused a write for memory: pause everything until memory is back under the mark."""
        self.metrics.redis_oom_refusals += 1
        self._oom = True
        self._oom_until = time.monotonic() + self._oom_backoff
        self._oom_backoff = min(self._oom_backoff * 2, 30.0)
        for d in self.probe.domains:
            self._pause(d, "redis_oom")

    def check(self, now: float | None = None) -> dict[str, str]:
        """Measure when due and update :attr:`paused`; returns it (domain -> reason)."""
        now = time.monotonic() if now is None else now
        if not (self.enabled or self._oom) or not self._due(now):
            return self.paused
        state = self._state_field() if self._state_due(now) else None
        backlog = self.probe.measure(state)
        if state is not None:
            self._state_written, self._state_dirty = now, False
        self.last = backlog
        self._measured_at = now
        self._since_measure = dict.fromkeys(self._since_measure, 0)
        self.metrics.backpressure_checks += 1
        self.metrics.backlog = self._flat(backlog)
        for d in self.probe.domains:
            reason = self._over_high(d, backlog) if self.enabled else None
            if self._oom:
                reason = reason or ("redis_oom" if not self._oom_cleared(backlog, now) else None)
            if reason:
                self._pause(d, reason)
            elif d in self.paused and (self._under_low(d, backlog) or not self.enabled):
                self._resume(d)
        if self._oom and not self.paused:
            self._oom, self._oom_backoff = False, 1.0
        return self.paused

    # -- decisions ---------------------------------------------------------------------------
    def _due(self, now: float) -> bool:
        if self.last is None or now - self._measured_at >= self.marks.interval_seconds:
            return True
        if self.paused:
            return False  # nothing is enqueued while paused: the interval decides
        # Sooner when what was enqueued since could have crossed the mark (bound: one batch over).
        base = max(self.last.in_flight_chains, self.last.unacked)
        return any(
            max(self.last.largest_queue(d), base) + n >= self.marks.high
            for d, n in self._since_measure.items()
            if n
        )

    def _over_high(self, d: str, b: Backlog) -> str | None:
        m = self.marks
        if b.largest_queue(d) > m.high:
            queue = max(b.queues[d].items(), key=lambda kv: kv[1])[0]
            return f"queue {queue}"
        if b.unacked > m.high:
            return "unacked"
        if b.scheduled > m.high:
            return "scheduled retries"
        if b.in_flight_chains > m.high:
            return "attachments in flight"
        if b.staged.get(d, 0) > m.staged_high:
            return "staged rows"
        if m.memory_high_ratio and b.maxmemory and b.used_memory > m.memory_high_ratio * b.maxmemory:
            return "redis memory"
        return None

    def _under_low(self, d: str, b: Backlog) -> bool:
        m = self.marks
        return (
            b.largest_queue(d) < m.low
            and b.unacked < m.low
            and b.scheduled < m.low
            and b.in_flight_chains < m.low
            and b.staged.get(d, 0) < m.staged_low
            and not (m.memory_low_ratio and b.maxmemory and b.used_memory > m.memory_low_ratio * b.maxmemory)
        )

    def _oom_cleared(self, b: Backlog, now: float) -> bool:
        if now < self._oom_until:
            return False
        if not b.maxmemory:
            return True  # no figure to wait for: the backoff alone decides
        ratio = self.marks.memory_low_ratio or 0.9
        return b.used_memory < ratio * b.maxmemory

    def _pause(self, d: str, reason: str) -> None:
        if d not in self.paused:
            self.metrics.pauses += 1
            self._paused_since[d] = time.monotonic()
            self._state_dirty = True
        self.paused[d] = reason
        self.metrics.paused_domains = sorted(self.paused)

    def _resume(self, d: str) -> None:
        self.paused.pop(d, None)
        since = self._paused_since.pop(d, None)
        if since is not None:
            self.metrics.paused_seconds_total += time.monotonic() - since
        self.metrics.paused_domains = sorted(self.paused)
        self._state_dirty = True

    # -- the state record --------------------------------------------------------------------
    def _state_due(self, now: float) -> bool:
        return self._state_dirty or now - self._state_written >= STATE_EVERY_SECONDS

    def paused_seconds(self) -> float:
        now = time.monotonic()
        return self.metrics.paused_seconds_total + sum(now - t for t in self._paused_since.values())

    def state_record(self) -> dict[str, Any]:
        return {
            "member": self.member,
            "group": self.group,
            "state": "paused" if self.paused else "running",
            "paused": dict(self.paused),
            "backpressure_enabled": self.enabled,
            "backlog": self.metrics.backlog,
            "marks": asdict(self.marks),
            "paused_seconds_total": round(self.paused_seconds(), 1),
            "pauses": self.metrics.pauses,
            "redis_oom_refusals": self.metrics.redis_oom_refusals,
            "updated_at": time.time(),
        }

    def _state_field(self) -> tuple[str, str]:
        return self.member, json.dumps(self.state_record(), separators=(",", ":"))

    def write_state(self, client: redis.Redis) -> None:
        """Best effort (a full Redis may refuse it; the next check writes it again)."""
        try:
            client.hset(STATE_KEY, *self._state_field())
        except redis.RedisError:
            self._state_dirty = True

    def forget(self, client: redis.Redis) -> None:
        with contextlib.suppress(redis.RedisError):
            client.hdel(STATE_KEY, self.member)

    def _flat(self, b: Backlog) -> dict[str, int]:
        flat = {q: n for d in b.queues for q, n in b.queues[d].items()}
        flat.update({f"staged:{d}": n for d, n in b.staged.items()})
        flat.update(
            {
                "unacked": b.unacked,
                "scheduled_retries": b.scheduled,
                "attachments_in_flight": b.in_flight_chains,
                "redis_used_memory": b.used_memory,
                "redis_maxmemory": b.maxmemory,
            }
        )
        return flat


def read_states(client: redis.Redis, stale_after: float = 60.0) -> list[dict[str, Any]]:
    """Every dispatcher's state record (``stale`` = not rewritten for ``stale_after`` seconds)."""
    out = []
    for _member, raw in sorted(client.hgetall(STATE_KEY).items()):
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        record["stale"] = time.time() - float(record.get("updated_at", 0)) > stale_after
        out.append(record)
    return out
