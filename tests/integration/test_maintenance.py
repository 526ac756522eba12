"""Table maintenance on a real Delta table: compaction keeps every row, respects the lock, and
follows the table's state after each flush (issue 9)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
from deltalake import DeltaTable, write_deltalake

from core.settings import load_settings
from domains.names import Table
from writers.flush import flush_table, read_table
from writers.maintenance import maintain_table, mergeable_small_files
from writers.staging import Stager, lock_key
from writers.tables import table_uri

pytestmark = pytest.mark.integration


def _row(i: int) -> dict:
    now = datetime(2026, 1, 5, tzinfo=UTC).isoformat()
    return {
        "media_id": f"m-{i}",
        "trace_id": f"t-{i}",
        "attachment_url": f"https://x/{i}.pdf",
        "blob_path": f"a/{i}.pdf",
        "file_type": "PDF",
        "status_subtype": "documentsReceived",
        "assignment_id": "A-1",
        "bytes_downloaded": i,
        "downloaded_at": now,
        "created_at": now,
        "event_date": "2026-01-05",
    }


def test_maintain__compacts_many_small_commits_and_keeps_every_row(
    tmp_path: Path, redis_client: redis.Redis, prefix: str
) -> None:
    settings = load_settings(lake_dir=tmp_path / "lake")
    stager = Stager(redis_client, prefix=prefix)
    for batch in range(5):  # five flushes -> five small files
        stager.stage(Table.XACT_ATTACHMENTS, [_row(batch * 10 + i) for i in range(10)])
        flush_table(settings, redis_client, Table.XACT_ATTACHMENTS, prefix=prefix)
    files_before = len(DeltaTable(table_uri(settings, Table.XACT_ATTACHMENTS)).file_uris())
    result = maintain_table(settings, redis_client, Table.XACT_ATTACHMENTS, prefix=prefix)
    assert result.skipped is None and result.files_removed_by_compaction == files_before >= 5
    assert len(DeltaTable(table_uri(settings, Table.XACT_ATTACHMENTS)).file_uris()) == 1
    assert sorted(read_table(settings, Table.XACT_ATTACHMENTS)["media_id"].to_list()) == sorted(
        f"m-{i}" for i in range(50)
    )


def test_maintain__skips_a_table_whose_flush_lock_is_held(
    tmp_path: Path, redis_client: redis.Redis, prefix: str
) -> None:
    settings = load_settings(lake_dir=tmp_path / "lake")
    Stager(redis_client, prefix=prefix).stage(Table.XACT_ATTACHMENTS, [_row(1)])
    flush_table(settings, redis_client, Table.XACT_ATTACHMENTS, prefix=prefix)
    redis_client.set(lock_key(prefix, Table.XACT_ATTACHMENTS), "someone-else", ex=30)
    assert maintain_table(settings, redis_client, Table.XACT_ATTACHMENTS, prefix=prefix).skipped == "locked"
    assert maintain_table(settings, redis_client, Table.CLAIMX_TASKS, prefix=prefix).skipped == "no table"


# --- compaction follows the table's state (issue 9) ----------------------------------------------


def _flushes(settings, redis_client: redis.Redis, prefix: str, count: int, start: int = 0, **kw) -> list:
    stager, results = Stager(redis_client, prefix=prefix), []
    for batch in range(start, start + count):
        stager.stage(Table.XACT_ATTACHMENTS, [_row(batch * 10 + i) for i in range(10)])
        results.append(flush_table(settings, redis_client, Table.XACT_ATTACHMENTS, prefix=prefix, **kw))
    return results


def _files(settings) -> int:
    return len(DeltaTable(table_uri(settings, Table.XACT_ATTACHMENTS)).file_uris())


def test_flush__compacts_once_the_table_holds_more_small_files_than_the_policy_allows(
    tmp_path: Path, redis_client: redis.Redis, prefix: str
) -> None:
    settings = load_settings(lake_dir=tmp_path / "lake", compact_small_files=3)
    results = _flushes(settings, redis_client, prefix, 6)
    compacted = [i for i, result in enumerate(results) if result.compaction is not None]
    assert compacted == [4]  # the 5th flush left 5 files, 4 of them mergeable (> 3)
    assert results[4].compaction.files_removed_by_compaction == 5
    assert _files(settings) == 2  # the compacted file and the 6th flush's
    log = tmp_path / "lake" / "tables" / Table.XACT_ATTACHMENTS.value / "_delta_log"
    assert list(log.glob("*.checkpoint.parquet"))  # the compaction is followed by a checkpoint
    assert len(read_table(settings, Table.XACT_ATTACHMENTS)) == 60


def test_flush__policy_off_leaves_compaction_to_the_daily_job(
    tmp_path: Path, redis_client: redis.Redis, prefix: str
) -> None:
    settings = load_settings(lake_dir=tmp_path / "lake", compact_small_files=0)
    assert all(result.compaction is None for result in _flushes(settings, redis_client, prefix, 5))
    assert _files(settings) == 5


def test_flush__a_flusher_that_lost_its_lock_does_not_compact(
    tmp_path: Path, redis_client: redis.Redis, prefix: str
) -> None:
    settings = load_settings(lake_dir=tmp_path / "lake", compact_small_files=1)
    _flushes(settings, redis_client, prefix, 2)

    def lose_lock(step: str, _: int) -> None:
        if step == "committed":  # another flusher may hold the table now: hands off
            redis_client.delete(lock_key(prefix, Table.XACT_ATTACHMENTS))

    (result,) = _flushes(settings, redis_client, prefix, 1, start=2, step_hook=lose_lock)
    assert result.rows_written == 10 and result.compaction is None  # the flush stands, no compaction
    assert _files(settings) == 3


def test_mergeable_small_files__counts_beyond_one_per_partition(tmp_path: Path) -> None:
    uri = str(tmp_path / "parted")
    for part in ("a", "a", "a", "b"):
        write_deltalake(uri, pa.table({"p": [part], "v": [1]}), mode="append", partition_by=["p"])
    table = DeltaTable(uri)
    assert mergeable_small_files(table, small_file_bytes=1 << 20) == 2  # a: 3 files -> 2; b: 1 -> 0
    assert mergeable_small_files(table, small_file_bytes=1) == 0  # nothing counts as small


def test_compaction__keeps_the_log_short_and_the_flush_versions(
    tmp_path: Path, redis_client: redis.Redis, prefix: str
) -> None:
    settings = load_settings(
        lake_dir=tmp_path / "lake", compact_small_files=2, delta_log_retention_hours=1 / 3600
    )
    _flushes(settings, redis_client, prefix, 4)  # the 4th compacts: sets the 1 s retention
    time.sleep(1.5)  # every entry so far has expired
    results = _flushes(settings, redis_client, prefix, 4, start=4)  # the 7th compacts again
    assert [result.compaction is not None for result in results] == [False, False, True, False]
    log = tmp_path / "lake" / "tables" / Table.XACT_ATTACHMENTS.value / "_delta_log"
    table = DeltaTable(table_uri(settings, Table.XACT_ATTACHMENTS))
    entries = sorted(int(path.name.split(".")[0]) for path in log.glob("*.json"))
    assert entries[0] > 0 and len(entries) < table.version()  # expired entries before the checkpoint went
    assert table.metadata().configuration["delta.logRetentionDuration"] == "interval 1 seconds"
    assert table.transaction_version("claims-pipeline:xact_attachments") == results[-1].version
    assert len(read_table(settings, Table.XACT_ATTACHMENTS)) == 80


def _data_files(uri: str) -> set[str]:
    return {p.name for p in Path(uri).glob("**/*.parquet") if "_delta_log" not in p.parts}


def test_compaction__tombstones_expire_with_the_log_and_the_daily_vacuum_still_finds_their_files(
    tmp_path: Path, redis_client: redis.Redis, prefix: str
) -> None:
    """Tombstones of compacted files live as long as log entries (``DELTA_LOG_RETENTION_HOURS``),
    not Delta's week, so checkpoints stay small; the daily vacuum (full mode) still removes those
    files once they are a week old (a vacuum that looks only at tombstones never would)."""
    settings = load_settings(
        lake_dir=tmp_path / "lake", compact_small_files=3, delta_log_retention_hours=1 / 3600
    )
    _flushes(settings, redis_client, prefix, 5)  # the 5th flush compacts 5 files into one
    uri = table_uri(settings, Table.XACT_ATTACHMENTS)
    config = DeltaTable(uri).metadata().configuration
    assert config["delta.deletedFileRetentionDuration"] == "interval 1 seconds"
    compacted = _data_files(uri) - {Path(u).name for u in DeltaTable(uri).file_uris()}
    assert len(compacted) == 5
    time.sleep(2)
    _flushes(settings, redis_client, prefix, 5, start=5)  # compacts again: a checkpoint after expiry
    newest = sorted((Path(uri) / "_delta_log").glob("*.checkpoint.parquet"))[-1]
    removes = [r for r in pq.read_table(newest).to_pylist() if r.get("remove")]
    assert len(removes) <= 5, len(removes)  # the first compaction's tombstones are gone

    old = time.time() - 200 * 3600
    for name in compacted:  # a week and more old
        for path in Path(uri).glob(f"**/{name}"):
            os.utime(path, (old, old))
    result = maintain_table(settings, redis_client, Table.XACT_ATTACHMENTS, prefix=prefix)
    assert result.files_vacuumed >= 5
    assert not compacted & _data_files(uri)  # found by listing, deleted
    assert len(read_table(settings, Table.XACT_ATTACHMENTS)) == 100
