"""Turn domain plans into Celery canvases, by task *name* (the dispatcher imports no task code).

* per event: ``{domain}.write.rows`` for each table's rows, ``claimx.enrich`` when the plan asks;
* per attachment: ``chain({domain}.download, {domain}.upload, {domain}.write.inventory)``.

``resume`` rebuilds the canvas for a dead letter so a replay continues with the original ids.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery, chain, signature
from celery.canvas import Signature

from core.deadletters import DeadLetter
from core.state import PendingAttachments, RowStash, UrlVault
from domains.attachments import AttachmentJob
from domains.canvas import ATTACHMENT_STAGES, EventPlan
from domains.names import Domain, Stage, Table, task_name

WRITE_ROWS = "rows"
WRITE_INVENTORY = "inventory"


def _stage_task(domain: Domain, stage: Stage) -> str:
    return task_name(domain, stage, WRITE_INVENTORY if stage is Stage.WRITE else "")


def attachment_chain(app: Celery, job: AttachmentJob) -> Signature:
    """download -> upload -> write(inventory); each link gets the previous link's return value."""
    payload = job.model_dump(mode="json")
    first, *rest = ATTACHMENT_STAGES
    links = [signature(_stage_task(job.domain, first), args=(payload,), app=app)]
    links += [signature(_stage_task(job.domain, stage), app=app) for stage in rest]
    return chain(*links)


def rows_signature(app: Celery, domain: Domain, table: Table, rows_ref: str, count: int) -> Signature:
    """``{domain}.write.rows(table, rows_ref, count)``: the rows wait in the stash, by reference."""
    return signature(task_name(domain, Stage.WRITE, WRITE_ROWS), args=(table.value, rows_ref, count), app=app)


def write_rows(
    app: Celery, domain: Domain, table: Table, rows: list[dict[str, Any]], stash: RowStash
) -> Signature:
    """Stash ``rows`` and return the write task that stages them."""
    return rows_signature(app, domain, table, stash.put(rows), len(rows))


def enrich(app: Celery, events: list[dict[str, Any]]) -> Signature:
    return signature(task_name(Domain.CLAIMX, Stage.ENRICH), args=(events,), app=app)


def track_attachments(pending: PendingAttachments, jobs: list[AttachmentJob]) -> None:
    """Record chains as in flight (``pipeline.sweep`` restarts one the broker lost)."""
    pending.add_many({job.vault_key(): job.model_dump_json() for job in jobs}, now=time.time())


def enqueue_plans(
    app: Celery, plans: list[EventPlan], vault: UrlVault, stash: RowStash, pending: PendingAttachments
) -> int:
    """Enqueue the canvases of a batch of plans; returns the number of signatures sent.

    URLs go to the vault, rows to the stash and chains to the pending index first, each in one
    round trip for the whole batch, then every signature is published over one pooled producer.
    """
    vault.put_many({job.vault_key(): url for plan in plans for job, url in plan.attachments})
    track_attachments(pending, [job for plan in plans for job, _url in plan.attachments])
    row_sets = [(plan.domain, table, rows) for plan in plans for table, rows in plan.rows.items() if rows]
    refs = stash.put_many([rows for _d, _t, rows in row_sets])
    sigs = [
        rows_signature(app, domain, table, ref, len(rows))
        for (domain, table, rows), ref in zip(row_sets, refs, strict=True)
    ]
    for plan in plans:
        if plan.enrich:
            sigs.append(enrich(app, plan.enrich))
        sigs += [attachment_chain(app, job) for job, _url in plan.attachments]
    with app.producer_or_acquire() as producer:
        for sig in sigs:
            sig.apply_async(producer=producer)
    return len(sigs)


def resume(app: Celery, letter: DeadLetter) -> Signature:
    """The canvas that replays a dead letter with its original ids.

    Attachment letters restart at ``download`` (idempotent; the cached file of a failed upload
    may be gone); other letters re-send their own task with the original arguments.
    """
    if letter.stage in (Stage.DOWNLOAD, Stage.UPLOAD) or letter.task_name.endswith(f".{WRITE_INVENTORY}"):
        job = AttachmentJob.model_validate(letter.payload)
        fresh = job.model_copy(
            update={
                "local_path": None,
                "bytes_downloaded": None,
                "content_type": None,
                "sha256": None,
                "downloaded_at": None,
                "destination": None,
                "uploaded_at": None,
                "refresh_count": 0,
                "context": {**job.context, "replayed_from": letter.id},
            }
        )
        return attachment_chain(app, fresh)
    args = letter.payload.get("args", [])
    return signature(letter.task_name, args=tuple(args), app=app)
