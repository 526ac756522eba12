"""The Beat-scheduled batcher: flush staged rows into Delta, one commit per table per flush.

``pipeline.flush`` runs every ``FLUSH_INTERVAL_SECONDS`` on the maintenance queue. Each table
flush takes a Redis lock, so concurrent flushes (several maintenance workers, a manual
``pipeline flush``) never commit to one table at the same time.
"""

from __future__ import annotations

import logging
import time

from celery import Task

from core import keys
from core.observability import Metric
from core.state import Counters, PendingAttachments
from domains.attachments import AttachmentJob
from domains.names import Table
from tasks.application import app
from tasks.canvas import attachment_chain
from tasks.runtime import get_runtime

log = logging.getLogger("pipeline.batcher")


class FlushFailed(Exception):
    """Shown in Flower as the task's failure; nothing is lost (the batch stays claimed)."""


@app.task(bind=True, name="pipeline.flush", acks_late=False)
def flush(self: Task) -> dict[str, int]:
    """Flush every table that has staged rows; returns rows written per table."""
    # Local import keeps start-up fast: Delta and Polars are loaded only by the maintenance
    # workers that run the batcher, not by every stage worker.
    from writers.flush import flush_all

    rt = get_runtime()
    written: dict[str, int] = {}
    failed: list[str] = []
    for result in flush_all(rt.settings, rt.redis):
        if result.error:
            # The batch stays claimed and is retried by the next scheduled flush.
            failed.append(result.table.value)
            rt.counters.incr("pipeline", f"flush_errors_{result.error_category}")
            log.error(
                "flush failed",
                extra={"table": result.table.value, "category": result.error_category, "error": result.error},
            )
        elif result.rows_in:
            written[result.table.value] = result.rows_written
            log.info(
                "flushed",
                extra={
                    "table": result.table.value,
                    "rows": result.rows_written,
                    "version": result.version,
                    "seconds": round(result.seconds, 3),
                },
            )
    if failed:
        raise FlushFailed(f"flush failed for {', '.join(failed)}; staged rows kept for the next flush")
    return written


@app.task(bind=True, name="pipeline.flush_table", acks_late=False)
def flush_table(self: Task, table: str) -> int:
    from writers.flush import flush_table as _flush  # local: start-up (see flush)

    rt = get_runtime()
    return _flush(rt.settings, rt.redis, Table(table)).rows_written


@app.task(bind=True, name="pipeline.maintain", acks_late=False)
def maintain(self: Task) -> dict[str, dict[str, int | str | None]]:
    """Daily: compact small files and vacuum unreferenced ones, table by table (under its lock)."""
    from writers.maintenance import maintain_table  # local: start-up (see flush)
    from writers.tables import TABLES  # local: start-up (see flush)

    rt = get_runtime()
    report: dict[str, dict[str, int | str | None]] = {}
    for table in TABLES:  # every registered domain's tables
        result = maintain_table(rt.settings, rt.redis, table)
        report[table.value] = {
            "compacted_away": result.files_removed_by_compaction,
            "vacuumed": result.files_vacuumed,
            "skipped": result.skipped,
        }
    log.info("maintenance done: %s", report)
    return report


def restart_lost_chains(
    client,
    pending: PendingAttachments,
    counters: Counters,
    orphan_after_seconds: float,
    now: float,
) -> int:
    """Restart attachment chains silent for longer than ``orphan_after_seconds``; returns how many.

    Celery on Redis can lose a message when a worker's main process dies between taking it off
    the queue and recording it as unacknowledged. The reaper (``tasks.reaper``) catches that within
    minutes for every chain whose current message id is known; this is the last net under it
    (chains tracked without an id, a reaper that cannot run). Restarting work that was not lost is
    harmless: every stage is idempotent.
    """
    restarted = 0
    for member, payload in pending.stale(now - orphan_after_seconds):
        job = AttachmentJob.model_validate_json(payload)
        if client.exists(keys.done(job.domain.value, job.media_id)):
            pending.done(member)
            continue
        chained = attachment_chain(app, job)
        first = chained.tasks[0]
        first.freeze()
        pending.expect(member, str(first.id), now=now)  # what the reaper now looks for
        chained.apply_async()
        counters.incr(job.domain, Metric.CHAINS_RESTARTED)
        restarted += 1
    if restarted:
        log.warning("restarted %d attachment chain(s) lost in flight", restarted)
    return restarted


@app.task(bind=True, name="pipeline.sweep", acks_late=False)
def sweep(self: Task) -> int:
    """Beat: restart attachment chains the broker lost (see :func:`restart_lost_chains`).

    One sweep at a time (two Beats, a redelivery): concurrent sweeps would both restart a chain.
    """
    from tasks.beat import single_run

    rt = get_runtime()
    with single_run(rt.redis, "sweep") as mine:
        if not mine:
            return 0
        return restart_lost_chains(
            rt.redis, rt.pending, rt.counters, rt.settings.orphan_after_seconds, time.time()
        )
