"""Commit Kafka offsets only after Redis holds the batch durably (issue 7 item 3).

The dispatcher writes a batch to Redis (URL vault, row stash, pending chains, Celery messages,
ledger) and then commits the batch's offsets. Redis acknowledges a write before its AOF reaches
the disk (``appendfsync everysec``): a Redis *host* crash can lose the last second of writes whose
offsets are already committed, and Kafka would never deliver those records again.

``WAITAOF numlocal numreplicas timeout`` (Redis >= 7.2, Valkey) blocks until the AOF holding the
client's last write is fsynced. The AOF is one sequence, so once the dispatcher's last write of
the batch (a marker, written after everything else of the batch, on one connection together with
the ``WAITAOF``) is on disk, every earlier write of the batch is too, whichever connection (Celery's
producer, the state client) made it.

Modes (``DISPATCH_DURABILITY``):

* ``auto`` (default): ``WAITAOF`` when the server supports it; otherwise commit after Redis's reply
  and say at start-up, once, that the window exists and how to close it (``appendfsync always``,
  which fsyncs before Redis replies, or Redis >= 7.2).
* ``waitaof``: as ``auto``, but a server that can confirm neither way refuses the start
  (:class:`core.errors.ConfigError`).
* ``off``: commit after Redis's reply (said at start-up).

A batch whose confirmation fails or times out raises :class:`NotDurableError` (a ``RedisError``):
the dispatcher does not commit and reads the batch again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis

from core.errors import ConfigError

log = logging.getLogger("pipeline.dispatcher")


class NotDurableError(redis.RedisError):
    """Redis could not confirm that the batch reached the AOF on disk in time."""


@dataclass
class DurabilityInfo:
    server: str
    waitaof: bool
    aof_enabled: bool
    appendfsync: str | None

    @property
    def fsync_always(self) -> bool:
        return self.aof_enabled and self.appendfsync == "always"


def probe(client: redis.Redis) -> DurabilityInfo:
    """What the server can confirm (read-only: ``INFO``, ``WAITAOF 0 0 0``, ``CONFIG GET``)."""
    info = client.info("server")
    server = f"{'Valkey' if info.get('valkey_version') else 'Redis'} {info.get('valkey_version') or info.get('redis_version')}"
    persistence = client.info("persistence")
    aof_enabled = bool(int(persistence.get("aof_enabled", 0)))
    try:
        client.execute_command("WAITAOF", 0, 0, 0)
        waitaof = True
    except redis.ResponseError:  # unknown command (Redis < 7.2)
        waitaof = False
    try:
        appendfsync = client.config_get("appendfsync").get("appendfsync")
    except redis.ResponseError:  # CONFIG is often disabled on managed Redis
        appendfsync = None
    return DurabilityInfo(server, waitaof, aof_enabled, appendfsync)


def _probe_when_up(client: redis.Redis, max_backoff_seconds: float = 5.0) -> DurabilityInfo:
    """:func:`probe`, waiting for Redis to answer: a dispatcher started while Redis is down (or
    loading its AOF after a restart) waits for it instead of exiting, so it needs no supervisor."""
    backoff = 0.2
    while True:
        try:
            return probe(client)
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
            log.warning("Redis does not answer yet (%s); retrying in %.1f s", type(exc).__name__, backoff)
            time.sleep(backoff)
            backoff = min(backoff * 2, max_backoff_seconds)


class Durability:
    """Start-up check and the per-batch wait; ``mode`` is what the dispatcher actually does:
    ``waitaof``, ``fsync-always`` (Redis replies after fsync) or ``unconfirmed``."""

    def __init__(self, client: redis.Redis, setting: str, timeout_ms: int, marker_key: str) -> None:
        self._r = client
        self._timeout_ms = timeout_ms
        self._marker = marker_key
        self.info = _probe_when_up(client)
        self.waits = 0
        self.failures = 0
        self.mode = self._decide(setting)

    def _decide(self, setting: str) -> str:
        info = self.info
        if setting == "off":
            log.info("DISPATCH_DURABILITY=off: offsets are committed once Redis replies, before fsync")
            return "unconfirmed"
        if info.waitaof and info.aof_enabled:
            log.info("%s: offsets are committed after WAITAOF confirms the batch is on disk", info.server)
            return "waitaof"
        if info.fsync_always:
            log.info(
                "%s: appendfsync always, Redis replies after fsync; offsets commit after that", info.server
            )
            return "fsync-always"
        why = (
            "AOF is off"
            if not info.aof_enabled
            else f"it has no WAITAOF (Redis >= 7.2) and appendfsync is {info.appendfsync or 'unknown'}"
        )
        message = (
            f"{info.server} cannot confirm that a dispatched batch is on disk ({why}): a Redis host "
            "crash can lose up to about one second of canvases whose Kafka offsets are already "
            "committed. Close the window with 'appendonly yes' + 'appendfsync always' on the Redis "
            "server, or Redis >= 7.2 (WAITAOF)."
        )
        if setting == "waitaof":
            raise ConfigError(f"DISPATCH_DURABILITY=waitaof: {message}")
        log.warning(message)
        return "unconfirmed"

    def confirm(self) -> None:
        """Block until everything written so far is fsynced (``waitaof`` mode); else return."""
        if self.mode != "waitaof":
            return
        self.waits += 1
        pipe = self._r.pipeline(transaction=False)
        pipe.set(self._marker, repr(time.time()), ex=3600)
        pipe.execute_command("WAITAOF", 1, 0, self._timeout_ms)
        try:
            _ok, (local, _replicas) = pipe.execute()
        except redis.exceptions.OutOfMemoryError:
            raise  # the backpressure path handles a full Redis
        except redis.ResponseError as exc:  # e.g. AOF switched off at runtime
            self.failures += 1
            raise NotDurableError(f"WAITAOF failed: {exc}") from exc
        if int(local) < 1:
            self.failures += 1
            raise NotDurableError(f"the AOF was not fsynced within {self._timeout_ms} ms")
