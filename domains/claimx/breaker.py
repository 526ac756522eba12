"""A circuit breaker whose state lives in Redis, so every worker on every host shares it (SPEC §5, §6.6).

State machine (one Redis hash per breaker, every transition one Lua script, clock = Redis ``TIME``):

* ``closed``: calls pass. A counted failure increments the consecutive-failure counter; at
  ``failure_threshold`` the breaker opens. A success resets the counter.
* ``open``: :meth:`CircuitBreaker.before_call` raises :class:`CircuitOpenError`
  (``"Circuit open, retry after <n>s"``, ``retry_after_seconds=n``) without any request being made.
  After ``open_seconds`` the next caller moves it to ``half_open``.
* ``half_open``: at most ``half_open_max_calls`` trial calls are admitted; ``success_threshold``
  successes close it; any counted failure re-opens it. A trial whose outcome is not counted (auth,
  permanent) gives its slot back. Trials that never report (a killed worker) are forgotten after
  ``open_seconds``, so the breaker cannot stay stuck half-open.

Which failures count is the caller's decision (:meth:`record_failure` vs :meth:`record_ignored`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis
from redis.commands.core import Script

from core import keys
from core.errors import CircuitOpenError, TransientError


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    """Thresholds; the defaults are SPEC §6.6's ClaimX API row."""

    failure_threshold: int = 5
    open_seconds: float = 60.0
    half_open_max_calls: int = 3
    success_threshold: int = 2


# KEYS[1] = state hash. ARGV: open_ms, half_open_max_calls.
# Returns {1, 0} when admitted, {0, retry_after_ms} when rejected.
_BEFORE_CALL = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local open_ms = tonumber(ARGV[1])
local max_trials = tonumber(ARGV[2])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'closed' then return {1, 0} end
local since = tonumber(redis.call('HGET', KEYS[1], 'since') or '0')
if state == 'open' then
  if now < since + open_ms then return {0, since + open_ms - now} end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'since', now, 'trials', 1, 'successes', 0)
  return {1, 0}
end
local trials = tonumber(redis.call('HGET', KEYS[1], 'trials') or '0')
if now >= since + open_ms then
  redis.call('HSET', KEYS[1], 'since', now, 'trials', 1, 'successes', 0)
  return {1, 0}
end
if trials < max_trials then
  redis.call('HINCRBY', KEYS[1], 'trials', 1)
  return {1, 0}
end
return {0, since + open_ms - now}
"""

# KEYS[1] = state hash. ARGV: outcome ('success'|'failure'|'ignored'), failure_threshold,
# success_threshold. Returns the state after the transition.
_RECORD = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local outcome = ARGV[1]
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'closed' then
  if outcome == 'success' then
    redis.call('HSET', KEYS[1], 'failures', 0)
  elseif outcome == 'failure' then
    local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
    if failures >= tonumber(ARGV[2]) then
      redis.call('HSET', KEYS[1], 'state', 'open', 'since', now, 'failures', 0, 'trials', 0, 'successes', 0)
      return 'open'
    end
  end
  return 'closed'
end
if state == 'half_open' then
  if outcome == 'failure' then
    redis.call('HSET', KEYS[1], 'state', 'open', 'since', now, 'failures', 0, 'trials', 0, 'successes', 0)
    return 'open'
  elseif outcome == 'success' then
    local successes = redis.call('HINCRBY', KEYS[1], 'successes', 1)
    if successes >= tonumber(ARGV[3]) then
      redis.call('DEL', KEYS[1])
      return 'closed'
    end
  else
    local trials = tonumber(redis.call('HGET', KEYS[1], 'trials') or '0')
    if trials > 0 then redis.call('HINCRBY', KEYS[1], 'trials', -1) end
  end
  return 'half_open'
end
return state
"""

_OUTCOMES = ("success", "failure", "ignored")


class CircuitBreaker:
    """A named breaker shared through Redis. Thread- and process-safe; transitions are atomic."""

    def __init__(
        self,
        redis_client: redis.Redis,
        name: str = "claimx_api",
        *,
        config: BreakerConfig | None = None,
        key_prefix: str = keys.BREAKER_PREFIX,
    ) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self._redis = redis_client
        self._key = f"{key_prefix}:{name}"
        self._before = redis_client.register_script(_BEFORE_CALL)
        self._record = redis_client.register_script(_RECORD)

    def before_call(self) -> None:
        """Admit one call, or raise :class:`CircuitOpenError` when the breaker is open or half-open and full."""
        admitted, retry_after_ms = self._run(
            self._before, int(self.config.open_seconds * 1000), self.config.half_open_max_calls
        )
        if not int(admitted):
            seconds = max(1, math.ceil(int(retry_after_ms) / 1000))
            raise CircuitOpenError(f"Circuit open, retry after {seconds}s", retry_after_seconds=seconds)

    def record_success(self) -> BreakerState:
        return self._outcome("success")

    def record_failure(self) -> BreakerState:
        """A counted failure (retryable API error, timeout, connection error)."""
        return self._outcome("failure")

    def record_ignored(self) -> BreakerState:
        """A call that ended in a failure the breaker does not count (auth, permanent)."""
        return self._outcome("ignored")

    def state(self) -> BreakerState:
        """The stored state (an expired ``open`` still reads ``open`` until the next call)."""
        value = self._call(self._redis.hget, self._key, "state")
        if isinstance(value, bytes):
            value = value.decode()
        return BreakerState(value) if value else BreakerState.CLOSED

    def reset(self) -> None:
        """Force ``closed`` (operator action, tests)."""
        self._call(self._redis.delete, self._key)

    def _outcome(self, outcome: str) -> BreakerState:
        assert outcome in _OUTCOMES
        result = self._run(
            self._record, outcome, self.config.failure_threshold, self.config.success_threshold
        )
        return BreakerState(result.decode() if isinstance(result, bytes) else result)

    def _run(self, script: Script, *args: str | int) -> Any:
        return self._call(script, keys=[self._key], args=list(args))

    @staticmethod
    def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one Redis operation; Redis trouble is transient (the caller's task is retried)."""
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise TransientError(f"circuit breaker state unavailable: {exc.__class__.__name__}") from exc
