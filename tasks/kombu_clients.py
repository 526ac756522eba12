"""One Redis client object per kombu channel, not one per publish or ack (issue 9 item 1).

kombu 5.7's Redis transport builds a fresh ``redis.Redis`` for every synchronous command it sends
outside the consumer loop: ``Channel.conn_or_acquire`` -> ``Channel._create_client()`` for each
``_put`` (a publish: every chain hand-off, every dispatched message), each ``QoS.ack`` /
``reject`` and each ``_size``. The connection itself comes from the channel's pool, but building
the client object (response callbacks, options) costs about 70 us of CPU here, several times per
task: the 5 % "kombu opening new Redis clients" of the issue's profile.

The patch: ``_create_client(asynchronous=False)`` returns the client it built before for the same
pool. A ``redis.Redis`` over a connection pool is safe to share between threads (each command
borrows a connection), so nothing else changes. A channel whose pool was dropped (closed, or
reconnected after a broker restart: ``tasks.kombu_fixes``) builds a new client for the new pool;
the asynchronous client (``BRPOP``, the consumer loop) is untouched.

Remove this module when kombu caches the client itself (check: the ``_create_client`` count in a
profile of ``bench/bench_e2e.py``).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

_CACHED = "_pipeline_sync_client"
_PATCHED = "_pipeline_reuses_client"


def install() -> None:
    """Patch ``kombu.transport.redis.Channel._create_client`` once (idempotent)."""
    channel_cls = kombu_redis.Channel
    original = channel_cls._create_client
    if getattr(original, _PATCHED, False):
        return

    def _create_client(self: Any, asynchronous: bool = False) -> Any:
        if asynchronous:
            return original(self, asynchronous=True)
        pool = self.pool
        cached = self.__dict__.get(_CACHED)
        if cached is not None and cached[0] is pool:
            return cached[1]
        client = original(self, asynchronous=False)
        self.__dict__[_CACHED] = (pool, client)
        return client

    setattr(_create_client, _PATCHED, True)
    channel_cls._create_client = _create_client  # type: ignore[method-assign]  # the patch, on purpose


install()
