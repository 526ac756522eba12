"""Benchmark: staged, batched exactly-once flush vs. one Delta append per 1,000 rows (same run).

    python bench/bench_flush.py [--rows 100000] [--batch 10000] [--baseline-batch 1000] [--redis-url URL]

Both sides write the same ``xact_attachments`` rows to fresh tables in a temporary directory.

* pipeline: rows are staged in Redis (``Stager.stage``, 1,000 rows per call, as write tasks would),
  then flushed with ``flush_table(max_rows=batch)`` until nothing is left: one commit per batch
  (an append of the keys the table lacks, found by a key-only lookup), with key de-duplication
  and the application transaction.
* baseline: every 1,000 rows are coerced to the schema and appended (``write_deltalake`` mode
  append) - what a write task that wrote straight to Delta would do. No de-duplication at all.

Prints rows/s for staging, flushing, pipeline end-to-end and the baseline, and the commit counts.
Needs Redis (``REDIS_URL`` or ``--redis-url``); uses a private key prefix and deletes it afterwards.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import redis
from deltalake import DeltaTable, write_deltalake

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.settings import load_settings
from domains.names import Table
from writers.flush import flush_table
from writers.staging import Stager
from writers.tables import TABLES, table_uri

TABLE = Table.XACT_ATTACHMENTS
STAGE_CHUNK = 1_000


def make_rows(count: int) -> list[dict[str, object]]:
    """Realistic inventory rows: unique media ids, ~10 attachments per trace, ISO timestamps."""
    start = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)
    rows = []
    for i in range(count):
        trace = f"3f9b2c1e-7a44-4c1d-9e2b-{i // 10:012d}"
        rows.append(
            {
                "media_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{trace}:{i}")),
                "trace_id": trace,
                "attachment_url": f"https://xn-exportreceiver.s3.example.com/exports/A-{i // 10}/{trace}/file_{i}.pdf",
                "blob_path": f"documentsReceived/A-{i // 10}/{trace}/A-{i // 10}_file_{i}.pdf",
                "file_type": "PDF",
                "status_subtype": "documentsReceived",
                "assignment_id": f"A-{i // 10}",
                "bytes_downloaded": 1000 + i,
                "downloaded_at": (start + timedelta(seconds=i)).isoformat(),
            }
        )
    return rows


def run_pipeline(
    rows: list[dict[str, object]], lake: Path, client: redis.Redis, batch: int
) -> dict[str, float]:
    settings = load_settings(lake_dir=lake)
    prefix = f"bench:flush:{uuid.uuid4().hex}"
    stager = Stager(client, prefix)
    try:
        started = time.perf_counter()
        for offset in range(0, len(rows), STAGE_CHUNK):
            stager.stage(TABLE, rows[offset : offset + STAGE_CHUNK])
        staged = time.perf_counter()
        commits = 0
        while True:
            result = flush_table(settings, client, TABLE, max_rows=batch, prefix=prefix)
            if result.rows_in == 0:
                break
            commits += 1
        flushed = time.perf_counter()
    finally:
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    written = pl.read_delta(table_uri(settings, TABLE)).height
    return {
        "stage_s": staged - started,
        "flush_s": flushed - staged,
        "total_s": flushed - started,
        "commits": commits,
        "rows": written,
    }


def run_baseline(rows: list[dict[str, object]], lake: Path, chunk: int) -> dict[str, float]:
    uri = str(lake / "baseline" / TABLE.value)
    spec = TABLES[TABLE]
    DeltaTable.create(uri, schema=spec.schema, partition_by=list(spec.partition_by))
    now = datetime.now(UTC)
    started = time.perf_counter()
    for offset in range(0, len(rows), chunk):
        part = [
            {
                **row,
                "downloaded_at": datetime.fromisoformat(str(row["downloaded_at"])),
                "created_at": now,
                "event_date": now.date(),
            }
            for row in rows[offset : offset + chunk]
        ]
        write_deltalake(uri, pa.Table.from_pylist(part, schema=spec.schema), mode="append")
    elapsed = time.perf_counter() - started
    return {"total_s": elapsed, "commits": DeltaTable(uri).version(), "rows": pl.read_delta(uri).height}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--baseline-batch", type=int, default=1_000)
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args()

    client = redis.Redis.from_url(args.redis_url or load_settings().redis_url)
    client.ping()
    rows = make_rows(args.rows)
    with tempfile.TemporaryDirectory(prefix="bench-flush-") as tmp:
        lake = Path(tmp)
        pipeline = run_pipeline(rows, lake / "pipeline", client, args.batch)
        baseline = run_baseline(rows, lake, args.baseline_batch)

    n = args.rows
    print(f"rows: {n}  table: {TABLE}  flush batch: {args.batch}  baseline append: {args.baseline_batch}")
    print(f"pipeline stage      {pipeline['stage_s']:7.2f} s  {n / pipeline['stage_s']:>10,.0f} rows/s")
    print(
        f"pipeline flush      {pipeline['flush_s']:7.2f} s  {n / pipeline['flush_s']:>10,.0f} rows/s"
        f"  ({pipeline['commits']:.0f} commits, {pipeline['rows']:.0f} rows in table)"
    )
    print(f"pipeline end-to-end {pipeline['total_s']:7.2f} s  {n / pipeline['total_s']:>10,.0f} rows/s")
    print(
        f"baseline appends    {baseline['total_s']:7.2f} s  {n / baseline['total_s']:>10,.0f} rows/s"
        f"  ({baseline['commits']:.0f} append commits, {baseline['rows']:.0f} rows in table)"
    )
    print(f"speed-up (end-to-end vs baseline): {baseline['total_s'] / pipeline['total_s']:.1f}x")


if __name__ == "__main__":
    main()
