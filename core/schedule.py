"""The durable retry schedule: delayed work waits in Redis, never in the broker.

A retry (or a circuit-open re-queue) is written here with its due time and the message that
continues it, and the current broker message is acknowledged. Releasers (every worker runs one,
``tasks.schedule``) publish entries once they are due.

Contract:

* **Durable.** Two keys in the broker's Redis (AOF on): a sorted set of entry ids by due time
  (``keys.SCHEDULE_DUE``) and a hash of the entries (``keys.SCHEDULE_ENTRIES``), written in one
  ``MULTI``. An entry id is the task id: a second schedule of the same task (a redelivered message
  that failed again) replaces the first instead of doubling it.
* **At most once per entry.** :meth:`RetrySchedule.claim_due` removes due entries and returns them
  in one Lua script, so of several releasers running at once exactly one gets each entry. A
  releaser that dies between its claim and its publish loses the entry; the in-flight net
  (``tasks.reaper``) re-drives that work within minutes, as it does any lost message.
"""

from __future__ import annotations

from typing import Any

import redis

from core import keys

# KEYS: due zset, entries hash. ARGV: now, limit. Returns the claimed entries (each removed).
_CLAIM_DUE_LUA = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local entry = redis.call('HGET', KEYS[2], id)
  redis.call('HDEL', KEYS[2], id)
  if entry then
    out[#out + 1] = entry
  end
end
return out
"""


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RetrySchedule:
    """Entries by id (the task id), each a JSON message, released at their due time."""

    DUE = keys.SCHEDULE_DUE
    ENTRIES = keys.SCHEDULE_ENTRIES

    def __init__(self, client: redis.Redis) -> None:
        self._r = client
        self._claim = client.register_script(_CLAIM_DUE_LUA)

    def add(self, entry_id: str, message: str, *, due: float, pipe: Any = None) -> None:
        """Store ``message`` to be released at ``due`` (epoch seconds). With ``pipe`` the two
        writes join the caller's transaction; without, they run in one of their own."""
        own = pipe is None
        p = self._r.pipeline(transaction=True) if own else pipe
        p.hset(self.ENTRIES, entry_id, message)
        p.zadd(self.DUE, {entry_id: due})
        if own:
            p.execute()

    def claim_due(self, now: float, limit: int = 100) -> list[str]:
        """Remove and return up to ``limit`` entries due at ``now`` (each to exactly one caller)."""
        return [_text(e) for e in self._claim(keys=[self.DUE, self.ENTRIES], args=[now, limit])]

    def due_at(self, entry_id: str) -> float | None:
        score = self._r.zscore(self.DUE, entry_id)
        return None if score is None else float(score)

    def scheduled(self, entry_ids: list[str]) -> set[str]:
        """The ids of ``entry_ids`` waiting in the schedule (one round trip)."""
        if not entry_ids:
            return set()
        pipe = self._r.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.zscore(self.DUE, entry_id)
        return {i for i, score in zip(entry_ids, pipe.execute(), strict=True) if score is not None}

    def count(self) -> int:
        return int(self._r.zcard(self.DUE))

    def next_due(self) -> float | None:
        """Due time of the earliest entry (None when the schedule is empty)."""
        first = self._r.zrange(self.DUE, 0, 0, withscores=True)
        return float(first[0][1]) if first else None
