"""``{domain}.write.*``: stage rows durably for the Beat-scheduled batcher (no Delta here).

* ``{domain}.write.rows(table, rows)``: event rows, entity rows, failed-attachment rows.
* ``{domain}.write.inventory(job)``: the end of an attachment chain: the inventory row, then
  the ``done`` marker that makes a re-run of this attachment a no-op.
"""

from __future__ import annotations

from typing import Any

from core.errors import PermanentError
from core.observability import Metric, staged
from domains.attachments import AttachmentJob
from domains.names import DOMAIN_STAGES, Domain, Stage, Table, task_name
from tasks.application import app
from tasks.base import StageTask, utcnow
from tasks.canvas import WRITE_INVENTORY, WRITE_ROWS
from tasks.outcomes import (
    DONE_PREFIX,
    DONE_TTL_SECONDS,
    inventory_row,
    record_attachment_failure,
    recovered_row,
)

_DOMAIN_TABLES = {d: {t for t in Table if t.value.startswith(d.value + "_")} for d in Domain}


def _stage_rows(task: StageTask, domain: Domain, table_name: str, rows_ref: str, count: int) -> int:
    rt = task.runtime
    try:
        table = Table(table_name)
        if table not in _DOMAIN_TABLES[domain]:
            raise PermanentError(f"Table {table_name} does not belong to domain {domain.value}")
        rows = rt.stash.get(rows_ref)
        if rows is None:  # already staged by an earlier delivery of this task
            rt.counters.incr(domain, Metric.WRITE_ROWS_ALREADY_STAGED)
            return 0
        rt.stager.stage(table, rows)
        rt.stash.delete(rows_ref)
    except Exception as exc:  # noqa: BLE001 - classified and routed by handle_failure
        task.handle_failure(exc, {"args": [table_name, rows_ref, count]}, key=rows_ref)
    rt.counters.incr(domain, staged(table_name), len(rows))
    return len(rows)


def _write_inventory(task: StageTask, domain: Domain, payload: dict[str, Any]) -> None:
    job = AttachmentJob.model_validate(payload)
    rt = task.runtime
    try:
        now = utcnow()
        table, row = inventory_row(job, rt.vault.get(job.vault_key()), now)
        rt.stager.stage(table, [row])
        recovered = recovered_row(job, now)
        if recovered is not None:
            rt.stager.stage(Table.XACT_ATTACHMENTS_FAILED, [recovered])
        rt.redis.set(
            f"{DONE_PREFIX}:{domain.value}:{job.media_id}", job.destination or "1", ex=DONE_TTL_SECONDS
        )
        rt.vault.delete(job.vault_key())
        rt.pending.done(job.vault_key())
    except Exception as exc:  # noqa: BLE001
        task.handle_failure(exc, payload, key=job.media_id, on_dead=record_attachment_failure)
    rt.counters.incr(domain, Metric.INVENTORY_STAGED)


def _register(domain: Domain) -> None:
    @app.task(
        base=StageTask,
        bind=True,
        name=task_name(domain, Stage.WRITE, WRITE_ROWS),
        domain=domain.value,
        stage=Stage.WRITE.value,
    )
    def write_rows(self: StageTask, table: str, rows_ref: str, count: int) -> int:
        """Stage the ``count`` rows held in the stash under ``rows_ref`` for ``table``."""
        return _stage_rows(self, domain, table, rows_ref, count)

    @app.task(
        base=StageTask,
        bind=True,
        name=task_name(domain, Stage.WRITE, WRITE_INVENTORY),
        domain=domain.value,
        stage=Stage.WRITE.value,
    )
    def write_inventory(self: StageTask, payload: dict[str, Any]) -> None:
        _write_inventory(self, domain, payload)


for _domain in DOMAIN_STAGES:
    _register(_domain)
