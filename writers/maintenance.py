"""Table maintenance that follows each table's state, not the clock (issue 9).

* **Compaction after a flush.** :func:`compact_if_due` runs at the end of a flush that committed,
  still under that table's flush lock (so no flush of the table runs meanwhile): when the table
  holds more than ``COMPACT_SMALL_FILES`` small files (below ``SMALL_FILE_BYTES``) that compaction
  can merge - every small file beyond one per partition - it compacts and writes a checkpoint, so
  the next merge scans a few files and replays a short log. A busy table (a commit every 5 s) is
  compacted every ~``COMPACT_SMALL_FILES`` flushes instead of once a day.
* **Checkpoints.** delta-rs writes one itself every ``delta.checkpointInterval`` commits (100 by
  default; its post-commit hook, on for every merge here); each compaction adds one.
* **A short log.** Every load of a table lists its ``_delta_log``, and a flush loads it several
  times: measured here, 2,000 commits of history made a merge of 20 rows 2x slower than the same
  rows in a fresh table, and dropping the entries before the checkpoint took most of that back.
  The hook sets ``delta.logRetentionDuration`` to ``DELTA_LOG_RETENTION_HOURS`` (Delta's default is
  30 days: 518,400 entries at a commit every 5 s) and drops expired entries after its checkpoint;
  delta-rs does the same after its own checkpoints. Checkpoints keep the flush versions.
* **Daily** (:func:`maintain_table`, Beat's ``pipeline.maintain``): compact, vacuum unreferenced
  files older than the retention, checkpoint, and drop expired log entries.

Everything runs under the same per-table lock as the flush, so maintenance and flushes never commit
to one table at the same time. Duplicates need no clean-up here: every flush merges on the key.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
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
    mergeable_small_files: int = 0
    """What :func:`mergeable_small_files` counted before this run."""


@dataclass(frozen=True)
class CompactionPolicy:
    """When a flush compacts its table (module doc); ``small_files == 0`` switches it off."""

    small_files: int = 32
    small_file_bytes: int = 16 * 1024**2
    log_retention_seconds: int = 3600

    @classmethod
    def from_settings(cls, settings: Settings) -> CompactionPolicy:
        return cls(
            settings.compact_small_files,
            settings.small_file_bytes,
            max(1, round(settings.delta_log_retention_hours * 3600)),
        )


LOG_RETENTION = "delta.logRetentionDuration"
TOMBSTONE_RETENTION = "delta.deletedFileRetentionDuration"


def keep_log_short(table: DeltaTable, retention_seconds: int) -> None:
    """Set the table's log and tombstone retention (one metadata commit, only when they differ),
    checkpoint, and drop the log entries that expired before that checkpoint.

    Tombstones (the ``remove`` actions of compacted files) are kept in every checkpoint for their
    retention: at Delta's default of a week, a table compacted every ~32 flushes carried 10,000 of
    them after 10,000 flushes, read on every load. Their files stay on disk until the daily vacuum
    removes them by age (a week; ``full`` mode finds them by listing, not by tombstone)."""
    wanted = f"interval {retention_seconds} seconds"
    config = table.metadata().configuration
    if config.get(LOG_RETENTION) != wanted or config.get(TOMBSTONE_RETENTION) != wanted:
        table.alter.set_table_properties({LOG_RETENTION: wanted, TOMBSTONE_RETENTION: wanted})
    table.create_checkpoint()
    table.cleanup_metadata()


def mergeable_small_files(table: DeltaTable, small_file_bytes: int) -> int:
    """Small data files beyond one per partition: the files compaction would merge away.

    Counting beyond one per partition keeps a quiet table whose every partition holds one small,
    already compacted file from being compacted after every flush.
    """
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return 0
    sizes = actions.column("size_bytes").to_pylist()
    partition_columns = [name for name in actions.column_names if name.startswith("partition.")]
    partitions = (
        zip(*(actions.column(name).to_pylist() for name in partition_columns), strict=True)
        if partition_columns
        else iter([()] * actions.num_rows)
    )
    small = Counter(part for part, size in zip(partitions, sizes, strict=True) if size < small_file_bytes)
    return sum(count - 1 for count in small.values())


def compact_if_due(
    uri: str,
    options: dict[str, str] | None,
    table: Table,
    policy: CompactionPolicy,
    keeper: LockKeeper,
    table_now: DeltaTable | None = None,
) -> MaintenanceResult | None:
    """The post-flush hook: compact + checkpoint when the table's state calls for it, else ``None``.

    The caller holds the table's flush lock (``keeper``) and has finished its own commit;
    ``table_now``: the table as that commit left it (else it is loaded here).
    Raises a classified :class:`PipelineError` on failure (the caller logs it: the flush stands).
    """
    if policy.small_files <= 0:
        return None
    started = time.perf_counter()
    try:
        dt = table_now if table_now is not None else DeltaTable(uri, storage_options=options)
        mergeable = mergeable_small_files(dt, policy.small_file_bytes)
        if mergeable <= policy.small_files:
            return None
        keeper.confirm(f"compact {table}")
        metrics = dt.optimize.compact()
        keep_log_short(dt, policy.log_retention_seconds)
    except Exception as exc:
        raise classify_delta_error(exc, f"compact {table}") from exc
    result = MaintenanceResult(
        table,
        int(metrics.get("numFilesRemoved", 0)),
        int(metrics.get("numFilesAdded", 0)),
        seconds=time.perf_counter() - started,
        mergeable_small_files=mergeable,
    )
    log.info(
        "compacted after flush",
        extra={
            "table": table.value,
            "small_files": mergeable,
            "files_removed": result.files_removed_by_compaction,
            "files_added": result.files_added_by_compaction,
            "seconds": round(result.seconds, 3),
        },
    )
    return result


def maintain_table(
    settings: Settings,
    redis_client: redis.Redis,
    table: Table,
    *,
    vacuum_retention_hours: int = 168,
    prefix: str = DEFAULT_PREFIX,
) -> MaintenanceResult:
    """Daily: compact, vacuum, checkpoint and drop expired log entries of one table; skipped when
    it does not exist or a flush holds its lock."""
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
            full=True,  # tombstones expire sooner than files (keep_log_short): find them by listing
        )
        keep_log_short(dt, CompactionPolicy.from_settings(settings).log_retention_seconds)
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
