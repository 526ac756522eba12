"""Benchmark: merge time per flush as a table takes many small flushes, maintenance policy on.

    python bench/bench_table_growth.py [--flushes 10000] [--rows 20] [--window 100] [--policy on|off|both]
                                       [--log-retention-seconds S] [--max-minutes M] [--redis-url URL]

Each flush stages ``--rows`` new ``xact_attachments`` rows (plus ``--rows // 4`` re-sent ones,
as redeliveries do) and runs the real ``flush_table``: claim, one commit with the
application transaction, drop - then, with the policy on, the post-flush hook
(``writers.maintenance.compact_if_due``: compact + checkpoint once the table holds more than
``COMPACT_SMALL_FILES`` small files, then checkpoint and drop expired log entries).
delta-rs itself checkpoints every 100 commits.

Log retention is a time (``DELTA_LOG_RETENTION_HOURS``, default 1 h) but what a merge pays for
is the number of log entries kept. The bench commits ~50x faster than a busy table (a commit every
5 s), so ``--log-retention-seconds 72`` keeps about as many entries as 1 h keeps in production
(720); the entries left at the end are printed.

Merge time = ``FlushResult.seconds`` (the flush without the hook); the hook's time is reported
apart, and amortised per flush. Baseline: the median of the first ``--window`` flushes of the same
run; the figure is the median of the last ``--window`` flushes divided by it (target <= 2x after
10,000 flushes). ``--policy off`` (or ``both``) shows the growth without the hook, as a reference.
``--max-minutes`` stops a run early; the count actually run is printed.
Needs Redis (``REDIS_URL`` or ``--redis-url``); uses a private key prefix and deletes it afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.settings import load_settings
from domains.names import Table
from writers.flush import flush_table
from writers.staging import Stager
from writers.tables import table_uri

TABLE = Table.XACT_ATTACHMENTS


@dataclass
class Growth:
    policy: bool
    merge_seconds: list[float] = field(default_factory=list)
    hook_seconds: list[float] = field(default_factory=list)
    compactions: int = 0
    files_end: int = 0
    checkpoints: int = 0
    log_entries: int = 0
    wall_seconds: float = 0.0

    @property
    def flushes(self) -> int:
        return len(self.merge_seconds)

    def window(self, start: int, size: int) -> float:
        return statistics.median(self.merge_seconds[start : start + size])

    def ratio(self, size: int) -> float:
        return self.window(self.flushes - size, size) / self.window(0, size)


def _row(i: int) -> dict[str, object]:
    trace = f"3f9b2c1e-7a44-4c1d-9e2b-{i // 10:012d}"
    return {
        "media_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{trace}:{i}")),
        "trace_id": trace,
        "attachment_url": f"https://xn-exportreceiver.s3.example.com/exports/A-{i // 10}/{trace}/file_{i}.pdf",
        "blob_path": f"documentsReceived/A-{i // 10}/{trace}/A-{i // 10}_file_{i}.pdf",
        "file_type": "PDF",
        "status_subtype": "documentsReceived",
        "assignment_id": f"A-{i // 10}",
        "bytes_downloaded": 1000 + i,
        "downloaded_at": "2026-01-05T14:00:00+00:00",
    }


def run(
    client: redis.Redis,
    *,
    flushes: int,
    rows: int,
    policy: bool,
    max_seconds: float | None = None,
    lake_parent: Path | None = None,
    log_retention_seconds: float | None = None,
    progress: bool = False,
) -> Growth:
    """``flushes`` small flushes into a fresh table; stops early after ``max_seconds``."""
    growth = Growth(policy)
    prefix = f"bench:growth:{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory(prefix="bench-growth-", dir=lake_parent) as tmp:
        overrides: dict[str, object] = {"lake_dir": Path(tmp) / "lake"}
        if not policy:
            overrides["compact_small_files"] = 0
        if log_retention_seconds:
            overrides["delta_log_retention_hours"] = log_retention_seconds / 3600
        settings = load_settings(**overrides)
        stager = Stager(client, prefix)
        started = time.perf_counter()
        try:
            for n in range(flushes):
                fresh = [_row(n * rows + i) for i in range(rows)]
                resent = [_row(max(0, n - 1) * rows + i) for i in range(rows // 4)]
                stager.stage(TABLE, fresh + resent)
                result = flush_table(settings, client, TABLE, prefix=prefix)
                growth.merge_seconds.append(result.seconds)
                hook = result.compaction.seconds if result.compaction else 0.0
                growth.hook_seconds.append(hook)
                growth.compactions += result.compaction is not None
                if progress and (n + 1) % max(1, flushes // 20) == 0:
                    recent = statistics.median(growth.merge_seconds[-50:])
                    print(f"  {n + 1:>6} flushes  merge median (last 50) {recent * 1000:6.1f} ms", flush=True)
                if max_seconds is not None and time.perf_counter() - started > max_seconds:
                    break
            growth.wall_seconds = time.perf_counter() - started
            from deltalake import DeltaTable

            growth.files_end = len(DeltaTable(table_uri(settings, TABLE)).file_uris())
            log = Path(table_uri(settings, TABLE)) / "_delta_log"
            growth.checkpoints = len(list(log.glob("*.checkpoint.parquet")))
            growth.log_entries = len(list(log.glob("*.json")))
        finally:
            keys = list(client.scan_iter(f"{prefix}:*"))
            if keys:
                client.delete(*keys)
    return growth


def report(growth: Growth, window: int) -> None:
    first, last = growth.window(0, window), growth.window(growth.flushes - window, window)
    hooks = sum(growth.hook_seconds)
    print(
        f"policy {'on ' if growth.policy else 'off'}: {growth.flushes} flushes in {growth.wall_seconds:.0f} s; "
        f"merge median first {window} {first * 1000:.1f} ms, last {window} {last * 1000:.1f} ms: "
        f"{last / first:.2f}x (target <= 2x with the policy on)"
    )
    print(
        f"  compactions {growth.compactions} ({hooks:.1f} s, {hooks / growth.flushes * 1000:.1f} ms a flush "
        f"amortised); at the end: {growth.files_end} files, {growth.log_entries} log entries, "
        f"{growth.checkpoints} checkpoints; "
        f"slowest merge {max(growth.merge_seconds) * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flushes", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=20, help="new rows per flush")
    parser.add_argument("--window", type=int, default=100, help="flushes in the first and last medians")
    parser.add_argument("--policy", choices=("on", "off", "both"), default="on")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop each run after this long")
    parser.add_argument(
        "--log-retention-seconds", type=float, default=None, help="DELTA_LOG_RETENTION_HOURS, in seconds"
    )
    parser.add_argument("--redis-url", default=load_settings().redis_url)
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis_url)
    print(f"load: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min)")
    for policy in {"on": (True,), "off": (False,), "both": (True, False)}[args.policy]:
        growth = run(
            client,
            flushes=args.flushes,
            rows=args.rows,
            policy=policy,
            max_seconds=args.max_minutes * 60 if args.max_minutes else None,
            log_retention_seconds=args.log_retention_seconds,
            progress=True,
        )
        report(growth, min(args.window, max(1, growth.flushes // 4)))


if __name__ == "__main__":
    main()
