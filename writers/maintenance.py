"""Table maintenance: compact small files and vacuum unreferenced ones (SPEC §2.3 "daily job").

Runs under the same per-table lock as the flush, so maintenance and flushes never commit to one
table at the same time. Duplicates need no clean-up here: every flush merges on the table's key.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis
from deltalake import DeltaTable

from core.settings import Settings
from domains.names import Table
from writers.errors import classify_delta_error
from writers.lock import LockKeeper
from writers.staging import DEFAULT_PREFIX, lock_key
from writers.tables import storage_options, table_uri

log = logging.getLogger(__name__)
LOCK_TIMEOUT_SECONDS = 60.0


@dataclass
class MaintenanceResult:
    table: Table
    files_removed_by_compaction: int = 0
    files_added_by_compaction: int = 0
    files_vacuumed: int = 0
    skipped: str | None = None
    seconds: float = 0.0


def maintain_table(
    settings: Settings,
    redis_client: redis.Redis,
    table: Table,
    *,
    vacuum_retention_hours: int = 168,
    prefix: str = DEFAULT_PREFIX,
) -> MaintenanceResult:
    """Compact then vacuum one table; skipped when it does not exist or a flush holds its lock."""
    started = time.perf_counter()
    uri, options = table_uri(settings, table), storage_options(settings)
    if not DeltaTable.is_deltatable(uri, storage_options=options):
        return MaintenanceResult(table, skipped="no table")
    lock = redis_client.lock(
        lock_key(prefix, table), timeout=LOCK_TIMEOUT_SECONDS, blocking=False, thread_local=False
    )
    if not lock.acquire(blocking=False):
        return MaintenanceResult(table, skipped="locked")
    keeper = LockKeeper(lock, LOCK_TIMEOUT_SECONDS / 3)
    try:
        dt = DeltaTable(uri, storage_options=options)
        metrics = dt.optimize.compact()
        vacuumed = dt.vacuum(
            retention_hours=vacuum_retention_hours,
            dry_run=False,
            enforce_retention_duration=vacuum_retention_hours >= 168,
        )
        return MaintenanceResult(
            table,
            int(metrics.get("numFilesRemoved", 0)),
            int(metrics.get("numFilesAdded", 0)),
            len(vacuumed),
            seconds=time.perf_counter() - started,
        )
    except Exception as exc:
        raise classify_delta_error(exc, f"maintain {table}") from exc
    finally:
        keeper.stop()
        try:
            lock.release()
        except redis.RedisError:
            log.warning("maintenance lock already gone", extra={"table": table.value})
