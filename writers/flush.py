"""Exactly-once flush of staged rows into Delta: one batch, one commit per table per flush.

Algorithm for one table (one writer at a time, guarded by a Redis lock):

1. Claim a batch. A batch left behind by a crashed flusher is reused with its version; otherwise a
   Lua script atomically moves up to ``max_rows`` rows from the head of the staging list into the
   batch list and takes the next version from the table's counter (never below the version Delta
   already recorded, so a Redis that lost the counter cannot make new rows look committed).
2. If Delta's application transaction for ``claims-pipeline:{table}`` is at or past the batch's
   version, the batch was committed before a crash: drop it, write nothing.
3. Otherwise coerce and de-duplicate the rows, create the table if missing, and make ONE commit
   (``writers.merge.merge_batch``: an append of the new keys, or a ``DeltaTable.merge`` for an
   upsert that meets existing keys) that records ``Transaction(app_id, version)``. delta-rs fails
   that commit if another commit with the same ``app_id`` landed after the table was loaded.
4. Delete the batch (staged rows are dropped only after the commit that holds them) with a
   compare-and-delete on its version: a flusher that stalled past its lock (GC pause, frozen VM)
   may resume after others dropped its batch and claimed the next one, so it deletes the batch
   only while ``batch_version`` still names the version it flushed (the same holds for step 2).

A batch that changes nothing (every key already present) makes no commit; re-running such a
batch is harmless because the write is idempotent by key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl
import redis
from deltalake import DeltaTable, Transaction
from deltalake.exceptions import TableNotFoundError
from redis.exceptions import LockError

from core.errors import ErrorCategory, PipelineError
from core.metrics import record_flushes
from core.settings import Settings
from domains.names import Table
from writers.coerce import build_batch
from writers.errors import classify_delta_error
from writers.lock import LockKeeper
from writers.maintenance import CompactionPolicy, MaintenanceResult, compact_if_due
from writers.merge import merge_batch
from writers.staging import (
    DEFAULT_PREFIX,
    batch_key,
    batch_version_key,
    lock_key,
    stage_key,
    version_key,
)
from writers.tables import TABLES, app_id, storage_options, table_uri

log = logging.getLogger(__name__)

#: The flush lock expires this long after its holder died; a live flusher renews it every third of it.
LOCK_TIMEOUT_SECONDS = 60.0

# KEYS: stage, batch, batch_version, version counter. ARGV: max_rows (0 = all), version floor.
# Returns {version, rows in batch, reused (0/1)}; {0, 0, 0} when there is nothing to flush.
_CLAIM_LUA = """
local function next_version()
  local v = redis.call('INCR', KEYS[4])
  local floor = tonumber(ARGV[2])
  if v <= floor then v = floor + 1; redis.call('SET', KEYS[4], v) end
  redis.call('SET', KEYS[3], v)
  return v
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  local v = tonumber(redis.call('GET', KEYS[3]) or '')
  if not v then v = next_version() end
  return {v, redis.call('LLEN', KEYS[2]), 1}
end
local total = redis.call('LLEN', KEYS[1])
if total == 0 then return {0, 0, 0} end
local n = tonumber(ARGV[1])
if n <= 0 or n >= total then
  redis.call('RENAME', KEYS[1], KEYS[2])
  n = total
else
  local i = 0
  while i < n do
    local last = math.min(i + 1000, n) - 1
    redis.call('RPUSH', KEYS[2], unpack(redis.call('LRANGE', KEYS[1], i, last)))
    i = last + 1
  end
  redis.call('LTRIM', KEYS[1], n, -1)
end
return {next_version(), n, 0}
"""

# KEYS: batch, batch_version. ARGV: the version the caller flushed. Deletes the batch only while it
# is still that version's; returns 1 when deleted, 0 when another flusher's batch is there now.
_DROP_LUA = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
"""

#: Test seam of :func:`flush_table`: called with a step name and the batch version.
StepHook = Callable[[str, int], None]

_READ_CHUNK_ROWS = 10_000  # rows per LRANGE reply


@dataclass
class FlushResult:
    """What one flush of one table did. ``rows_written`` = rows inserted + rows updated."""

    table: Table
    rows_in: int
    rows_written: int
    version: int | None
    skipped_committed: bool
    seconds: float
    skipped_locked: bool = False
    """Another flusher held the table's lock; nothing was done."""
    error: str | None = None
    """Set by :func:`flush_all` when this table's flush failed (the batch stays claimed)."""
    error_category: ErrorCategory | None = None
    compaction: MaintenanceResult | None = None
    """Set when the post-flush hook compacted the table (``writers.maintenance.compact_if_due``)."""


def flush_table(
    settings: Settings,
    redis_client: redis.Redis,
    table: Table | str,
    *,
    max_rows: int | None = None,
    prefix: str = DEFAULT_PREFIX,
    lock_timeout_seconds: float = LOCK_TIMEOUT_SECONDS,
    step_hook: StepHook | None = None,
) -> FlushResult:
    """Flush at most ``max_rows`` staged rows of ``table`` into Delta, exactly once.

    Returns ``skipped_locked=True`` at once when another flusher holds the table's lock. The lock
    is kept alive while this flush runs and expires ``lock_timeout_seconds`` after a flusher died.
    Raises a classified :class:`PipelineError` when Redis or the Delta write fails; the batch then
    stays claimed and the next flush retries it under the same version.

    ``step_hook`` is a fault-injection seam for tests, never set in production: it is called as
    ``step_hook("claimed", version)`` right after the batch is claimed and
    ``step_hook("committed", version)`` after the Delta commit, before the batch is deleted. A hook
    that blocks stands for a stalled flusher; one that raises, for a flusher that died there.
    """
    table = Table(table)
    started = time.perf_counter()
    lock = redis_client.lock(
        lock_key(prefix, table), timeout=lock_timeout_seconds, blocking=False, thread_local=False
    )  # the keeper thread renews it
    try:
        acquired = lock.acquire(blocking=False)
    except redis.RedisError as exc:
        raise classify_delta_error(exc, f"flush {table}: lock") from exc
    if not acquired:
        return FlushResult(table, 0, 0, None, False, time.perf_counter() - started, skipped_locked=True)
    keeper = LockKeeper(lock, lock_timeout_seconds / 3)
    try:
        result, delta = _flush_locked(
            settings, redis_client, table, max_rows, prefix, keeper, started, step_hook
        )
        if result.rows_written:  # a commit: the table's state may now call for compaction
            result.compaction = _compact_if_due(settings, table, keeper, delta)
        return result
    except Exception as exc:
        raise classify_delta_error(exc, f"flush {table}") from exc
    finally:
        keeper.stop()
        _release(lock, table)


def flush_all(
    settings: Settings, redis_client: redis.Redis, *, prefix: str = DEFAULT_PREFIX
) -> list[FlushResult]:
    """One flush of every table (``settings.flush_max_rows`` rows each), in registry order.

    A failing table does not stop the others: its result carries ``error``/``error_category``
    and its batch stays claimed for the next run.
    """
    results = []
    for table in TABLES:
        try:
            results.append(
                flush_table(settings, redis_client, table, max_rows=settings.flush_max_rows, prefix=prefix)
            )
        except PipelineError as exc:
            log.warning(
                "flush failed",
                extra={"table": table.value, "error_category": exc.category.value, "error": exc.message},
            )
            results.append(
                FlushResult(table, 0, 0, None, False, 0.0, error=exc.message, error_category=exc.category)
            )
    record_flushes(redis_client, results)  # Prometheus figures + last successful flush per table
    return results


def read_table(settings: Settings, table: Table | str) -> pl.DataFrame:
    """The whole table as a polars frame (empty, with the table's schema, when it does not exist).

    Reads through polars, never ``DeltaTable.to_pyarrow_table`` (which can abort the process at exit).
    """
    table = Table(table)
    uri, options = table_uri(settings, table), storage_options(settings)
    if not DeltaTable.is_deltatable(uri, storage_options=options):
        frame = pl.from_arrow(TABLES[table].schema.empty_table())
        assert isinstance(frame, pl.DataFrame)
        return frame
    return pl.read_delta(uri, storage_options=options)


# --- internals -------------------------------------------------------------------------------


def _flush_locked(
    settings: Settings,
    redis_client: redis.Redis,
    table: Table,
    max_rows: int | None,
    prefix: str,
    keeper: LockKeeper,
    started: float,
    step_hook: StepHook | None,
) -> tuple[FlushResult, DeltaTable | None]:
    """The flush, and the table as it loaded it (``None``: the table did not exist yet)."""
    spec = TABLES[table]
    batch_list = batch_key(prefix, table)
    if not redis_client.exists(stage_key(prefix, table), batch_list):
        return FlushResult(table, 0, 0, None, False, time.perf_counter() - started), None
    uri, options = table_uri(settings, table), storage_options(settings)
    # Loaded once per flush (issue 9): the merge and the post-flush hook use this object, which
    # each commit moves to its new version; the table's lock keeps other writers out meanwhile.
    delta = _open_table(uri, options)
    committed = delta.transaction_version(app_id(table)) if delta is not None else None
    version, count, reused = _claim(redis_client, prefix, table, max_rows, committed or 0)
    if count == 0:
        return FlushResult(table, 0, 0, None, False, time.perf_counter() - started), delta
    if step_hook is not None:
        step_hook("claimed", version)
    if reused and committed is not None and committed >= version:
        _drop_batch(redis_client, prefix, table, version)
        log.info("batch already committed; dropped", extra={"table": table.value, "version": version})
        return FlushResult(table, count, 0, version, True, time.perf_counter() - started), delta

    batch = build_batch(spec, _read_batch(redis_client, batch_list, count))
    if batch.dropped_unreadable or batch.dropped_no_key:
        log.warning(
            "staged rows dropped",
            extra={
                "table": table.value,
                "unreadable": batch.dropped_unreadable,
                "no_key": batch.dropped_no_key,
            },
        )
    written = 0
    if batch.table.num_rows:
        keeper.confirm(f"flush {table}")
        written = merge_batch(uri, options, spec, batch.table, Transaction(app_id(table), version), delta)
    if step_hook is not None:
        step_hook("committed", version)
    _drop_batch(redis_client, prefix, table, version)
    seconds = time.perf_counter() - started
    log.info(
        "flushed",
        extra={
            "table": table.value,
            "version": version,
            "rows_in": batch.rows_in,
            "rows_written": written,
            "seconds": round(seconds, 3),
        },
    )
    return FlushResult(table, batch.rows_in, written, version, False, seconds), delta


def _claim(
    redis_client: redis.Redis, prefix: str, table: Table, max_rows: int | None, floor: int
) -> tuple[int, int, bool]:
    keys = [
        stage_key(prefix, table),
        batch_key(prefix, table),
        batch_version_key(prefix, table),
        version_key(prefix, table),
    ]
    version, count, reused = redis_client.eval(_CLAIM_LUA, len(keys), *keys, max(0, max_rows or 0), floor)
    return int(version), int(count), bool(reused)


def _read_batch(redis_client: redis.Redis, key: str, count: int) -> bytes:
    """The batch as NDJSON (rows never contain a raw newline: ``encode_row`` escapes them)."""
    rows: list[bytes] = []
    for start in range(0, count, _READ_CHUNK_ROWS):
        rows.extend(redis_client.lrange(key, start, start + _READ_CHUNK_ROWS - 1))
    return b"\n".join(rows)


def _drop_batch(redis_client: redis.Redis, prefix: str, table: Table, version: int) -> bool:
    """Delete the claimed batch if it is still ``version``'s (compare-and-delete); True if deleted.

    False means the lock was lost while this flusher stalled and another flusher has since
    dropped this batch and claimed a new one: that batch is not ours to delete.
    """
    keys = [batch_key(prefix, table), batch_version_key(prefix, table)]
    if int(redis_client.eval(_DROP_LUA, len(keys), *keys, str(version))):
        return True
    log.warning(
        "claimed batch changed hands while this flusher stalled; left in place",
        extra={"table": table.value, "version": version},
    )
    return False


def _open_table(uri: str, options: dict[str, str] | None) -> DeltaTable | None:
    try:
        return DeltaTable(uri, storage_options=options)
    except TableNotFoundError:
        return None


def _compact_if_due(
    settings: Settings, table: Table, keeper: LockKeeper, delta: DeltaTable | None = None
) -> MaintenanceResult | None:
    """The post-flush hook, still under the table's lock. Its failure never fails the flush, whose
    batch is committed and dropped by now: the next flush (or the daily job) compacts instead."""
    try:
        return compact_if_due(
            table_uri(settings, table),
            storage_options(settings),
            table,
            CompactionPolicy.from_settings(settings),
            keeper,
            delta,
        )
    except PipelineError as exc:
        log.warning(
            "compaction after flush failed",
            extra={"table": table.value, "error_category": exc.category.value, "error": exc.message},
        )
        return None


def _release(lock: redis.lock.Lock, table: Table) -> None:
    try:
        lock.release()
    except LockError:
        log.warning("flush lock was lost before release", extra={"table": table.value})
    except redis.RedisError as exc:  # the lock expires on its own; the flush result stands
        log.warning("flush lock release failed", extra={"table": table.value, "error": type(exc).__name__})
