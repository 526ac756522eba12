"""A token bucket in Redis: one request rate shared by every process on every host (SPEC §5, settings).

Algorithm (one Lua script, clock = Redis ``TIME`` so host clocks do not matter): the bucket refills at
``rate_per_second`` up to ``burst`` tokens. :meth:`RateLimiter.acquire` takes one token; when none is
left it *reserves* the next one (the balance goes negative) and sleeps until that token's refill
time, so waiting callers are served in arrival order with a single round trip each. A reservation
that would wait longer than ``max_wait_seconds`` is not made; :class:`TransientError` is raised
instead (with ``retry_after_seconds``), so a saturated API pushes work back to the queue rather than
pinning workers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import redis

from core import keys
from core.errors import TransientError
from core.metrics import observe_ratelimit_wait

# KEYS[1] = bucket hash. ARGV: rate per second, burst, max wait in microseconds.
# Returns the wait in microseconds (0 = go now), or -(wait) when the wait would exceed the maximum.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or ARGV[2])
local last = tonumber(redis.call('HGET', KEYS[1], 'ts') or now)
if now > last then
  tokens = math.min(burst, tokens + (now - last) * rate / 1000000)
  last = now
end
local after = tokens - 1
local wait = 0
if after < 0 then wait = math.ceil(-after * 1000000 / rate) end
if wait > max_wait then return -wait end
redis.call('HSET', KEYS[1], 'tokens', tostring(after), 'ts', tostring(last))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst + max_wait * rate / 1000000) * 1000 / rate) + 1000)
return wait
"""


class RateLimiter:
    """A named, Redis-backed token bucket. Safe across threads, processes and hosts."""

    def __init__(
        self,
        redis_client: redis.Redis,
        name: str = "claimx_api",
        *,
        rate_per_second: float,
        burst: int | None = None,
        max_wait_seconds: float = 10.0,
        key_prefix: str = keys.RATELIMIT_PREFIX,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.name = name
        self.rate_per_second = float(rate_per_second)
        self.burst = max(1, burst if burst is not None else math.ceil(rate_per_second))
        self.max_wait_seconds = max_wait_seconds
        self._key = f"{key_prefix}:{name}"
        self._script = redis_client.register_script(_ACQUIRE)
        self._sleep = sleep

    def acquire(self) -> float:
        """Take one token, sleeping until it is due; return the seconds slept.

        Raises :class:`TransientError` when the wait would exceed ``max_wait_seconds`` or Redis is
        unreachable.
        """
        try:
            wait_us = int(
                self._script(
                    keys=[self._key],
                    args=[self.rate_per_second, self.burst, int(self.max_wait_seconds * 1_000_000)],
                )
            )
        except redis.RedisError as exc:
            raise TransientError(f"rate limiter unavailable: {exc.__class__.__name__}") from exc
        if wait_us < 0:
            wait_s = -wait_us / 1_000_000
            raise TransientError(
                f"Rate limit {self.name}: next slot in {wait_s:.1f}s exceeds the "
                f"{self.max_wait_seconds:g}s maximum wait",
                retry_after_seconds=math.ceil(wait_s),
            )
        if wait_us:
            observe_ratelimit_wait(wait_us / 1_000_000)
            self._sleep(wait_us / 1_000_000)
        return wait_us / 1_000_000
