"""Table maintenance on a real Delta table: compaction keeps every row, and respects the lock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from deltalake import DeltaTable

from core.settings import load_settings
from domains.names import Table
from writers.flush import flush_table, read_table
from writers.maintenance import maintain_table
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
