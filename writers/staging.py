"""Durable row staging in Redis: one list per table, flushed into Delta by :mod:`writers.flush`.

Keys (``{prefix}`` defaults to ``pipeline:stage``):

* ``{prefix}:{table}`` – staged rows, one JSON object per item, oldest first.
* ``{prefix}:{table}:batch`` / ``:batch_version`` – the batch a flusher has claimed and the Delta
  application-transaction version it will commit under. The version is also the batch's owner
  token: a flusher deletes the batch only while ``:batch_version`` still holds its version.
* ``{prefix}:{table}:version`` – the table's batch-version counter.

Staging is idempotent in effect: a row staged twice (a redelivered write task) is combined by key
at flush time, and the merge never creates a second row for a key.
"""

from __future__ import annotations

from typing import Any

import redis

from core import keys
from core.rows import encode_row as encode_row  # re-exported: the staged row format
from domains.names import Table

DEFAULT_PREFIX = keys.STAGE_PREFIX


def stage_key(prefix: str, table: Table | str) -> str:
    return f"{prefix}:{Table(table).value}"


def batch_key(prefix: str, table: Table | str) -> str:
    return f"{stage_key(prefix, table)}:batch"


def batch_version_key(prefix: str, table: Table | str) -> str:
    return f"{stage_key(prefix, table)}:batch_version"


def version_key(prefix: str, table: Table | str) -> str:
    return f"{stage_key(prefix, table)}:version"


def lock_key(prefix: str, table: Table | str) -> str:
    """``pipeline:lock:flush:{table}`` for the default prefix; namespaced under any other prefix."""
    name = Table(table).value
    return keys.flush_lock(name) if prefix == DEFAULT_PREFIX else f"{prefix}:lock:flush:{name}"


class Stager:
    """Rows staged durably in Redis lists, one list per table (Redis AOF makes them survive restarts)."""

    def __init__(self, redis: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = redis
        self.prefix = prefix

    def stage(self, table: Table, rows: list[dict[str, Any]]) -> int:
        """Append ``rows`` (RPUSH, one command) to the table's list; returns the list's length.

        Raises ``TypeError`` for a value JSON cannot carry - before anything is written.
        """
        key = stage_key(self.prefix, table)
        if not rows:
            return int(self._redis.llen(key))
        encoded = [encode_row(row) for row in rows]
        return int(self._redis.rpush(key, *encoded))

    def stage_in(self, pipe: Any, table: Table, rows: list[dict[str, Any]]) -> None:
        """Queue the RPUSH of ``rows`` on ``pipe`` (a pipeline or ``MULTI`` the caller executes),
        so staging shares one round trip, or one transaction, with what must go with it.

        Raises ``TypeError`` like :meth:`stage`, before anything is queued.
        """
        if rows:
            encoded = [encode_row(row) for row in rows]
            pipe.rpush(stage_key(self.prefix, table), *encoded)

    def pending(self, table: Table) -> int:
        """Rows waiting in the staging list (a claimed, not yet committed batch not included)."""
        return int(self._redis.llen(stage_key(self.prefix, table)))

    def in_flight(self, table: Table) -> int:
        """Rows of the claimed batch a flusher has not yet confirmed committed."""
        return int(self._redis.llen(batch_key(self.prefix, table)))
