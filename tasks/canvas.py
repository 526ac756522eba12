"""Turn domain plans into Celery canvases, by task *name* (the dispatcher imports no task code).

* per event: ``{domain}.write.rows`` for each table's rows, ``{domain}.enrich`` when the plan asks;
* per attachment: the chain ``domains.canvas.ATTACHMENT_CHAIN`` declares
  (``{domain}.download -> {domain}.upload -> {domain}.write.inventory``).

``resume`` rebuilds the canvas for a dead letter so a replay continues with the original ids.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from celery import Celery, chain, signature
from celery.canvas import Signature

from core.deadletters import DeadLetter
from core.state import PendingAttachments, PendingTasks, RowStash, UrlVault
from domains.attachments import AttachmentJob
from domains.canvas import ATTACHMENT_CHAIN, WRITE_INVENTORY, WRITE_ROWS, EventPlan
from domains.names import Domain, Stage, Table, task_name

log = logging.getLogger("pipeline.tasks")

__all__ = ["WRITE_INVENTORY", "WRITE_ROWS", "attachment_chain", "enqueue_plans", "resume", "write_rows"]

#: Messages (Redis commands) per pipelined publish of a dispatch batch.
PUBLISH_BATCH = 500


def attachment_chain(app: Celery, job: AttachmentJob) -> Signature:
    """The attachment chain; each link gets the previous link's return value."""
    payload = job.model_dump(mode="json")
    (first, first_what), *rest = ATTACHMENT_CHAIN
    links = [signature(task_name(job.domain, first, first_what), args=(payload,), app=app)]
    links += [signature(task_name(job.domain, stage, what), app=app) for stage, what in rest]
    return chain(*links)


def rows_signature(app: Celery, domain: Domain, table: Table, rows_ref: str, count: int) -> Signature:
    """``{domain}.write.rows(table, rows_ref, count)``: the rows wait in the stash, by reference."""
    return signature(task_name(domain, Stage.WRITE, WRITE_ROWS), args=(table.value, rows_ref, count), app=app)


def write_rows(
    app: Celery, domain: Domain, table: Table, rows: list[dict[str, Any]], stash: RowStash
) -> Signature:
    """Stash ``rows`` and return the write task that stages them."""
    return rows_signature(app, domain, table, stash.put(rows), len(rows))


def enrich(app: Celery, domain: Domain, events: list[dict[str, Any]]) -> Signature:
    """``{domain}.enrich(events)``: one unit of the domain's enrich stage."""
    return signature(task_name(domain, Stage.ENRICH), args=(events,), app=app)


def redo_record(sig: Signature) -> str:
    """What re-sends a single task the broker lost: its signature, with its id (JSON)."""
    return json.dumps(
        {"task": sig.task, "args": list(sig.args), "kwargs": dict(sig.kwargs), "options": {"task_id": sig.id}}
    )


def track_in_flight(
    pending: PendingAttachments, chains: list[tuple[AttachmentJob, Signature]], singles: list[Signature]
) -> None:
    """Record work as in flight before it is published, in one round trip (the reaper,
    ``tasks.reaper``, re-drives what the broker loses): each chain with the id of its first
    message, each single task (``write.rows``, ``enrich``) with its signature. Gives every
    signature its task id (``freeze``)."""
    first_ids = {}
    for job, chained in chains:
        first = chained.tasks[0]
        first.freeze()
        first_ids[job.vault_key()] = str(first.id)
    for sig in singles:
        sig.freeze()
    pipe = pending.client.pipeline(transaction=False)
    now = time.time()
    pending.add_many(
        {job.vault_key(): job.model_dump_json() for job, _c in chains}, now=now, task_ids=first_ids, pipe=pipe
    )
    PendingTasks(pending.client).add_many(
        {str(sig.id): redo_record(sig) for sig in singles}, now=now, pipe=pipe
    )
    pipe.execute()


def enqueue_plans(
    app: Celery, plans: list[EventPlan], vault: UrlVault, stash: RowStash, pending: PendingAttachments
) -> int:
    """Enqueue the canvases of a batch of plans; returns the number of signatures sent.

    URLs go to the vault, rows to the stash, and every chain and task to the in-flight registries
    first, each in one round trip for the whole batch, then every signature is published over one
    pooled producer.
    """
    vault.put_many({job.vault_key(): url for plan in plans for job, url in plan.attachments})
    row_sets = [(plan.domain, table, rows) for plan in plans for table, rows in plan.rows.items() if rows]
    refs = stash.put_many([rows for _d, _t, rows in row_sets])
    singles = [
        rows_signature(app, domain, table, ref, len(rows))
        for (domain, table, rows), ref in zip(row_sets, refs, strict=True)
    ]
    chains: list[tuple[AttachmentJob, Signature]] = []
    for plan in plans:
        if plan.enrich:
            singles.append(enrich(app, plan.domain, plan.enrich))
        chains += [(job, attachment_chain(app, job)) for job, _url in plan.attachments]
    track_in_flight(pending, chains, singles)
    sigs = singles + [chained for _job, chained in chains]
    # One pipelined round trip per PUBLISH_BATCH messages (kombu's ``Producer.batch``), not one
    # LPUSH each. A failed flush raises (the caller re-sends the batch; a message sent twice is
    # harmless: every stage is idempotent); an exception inside discards what was not flushed.
    try:
        with app.producer_or_acquire() as producer, producer.batch(max_size=PUBLISH_BATCH):
            for sig in sigs:
                sig.apply_async(producer=producer)
    except Exception:
        # The caller sends these plans again (one by one after a data error, the whole batch
        # after a broker error), each under new ids: what this attempt registered would make the
        # reaper re-send work that is either sent again or dead-lettered.
        _untrack(pending, chains, singles)
        raise
    return len(sigs)


def _untrack(
    pending: PendingAttachments, chains: list[tuple[AttachmentJob, Signature]], singles: list[Signature]
) -> None:
    """Best effort (Redis may be the failure): a stale entry only means a harmless re-send."""
    try:
        pipe = pending.client.pipeline(transaction=False)
        for job, _chained in chains:
            pending.done(job.vault_key(), pipe=pipe)
        tasks = PendingTasks(pending.client)
        for sig in singles:
            tasks.done(str(sig.id), pipe=pipe)
        pipe.execute()
    except Exception:  # the publish error is the one to raise
        log.warning(
            "could not remove the in-flight entries of a failed publish (the reaper may re-send them)",
            exc_info=True,
        )


def _restarts_at_download(stage: str, task: str) -> bool:
    return stage in (Stage.DOWNLOAD, Stage.UPLOAD) or task.endswith(f".{WRITE_INVENTORY}")


def replay_holds(stage: str, task: str, payload: dict[str, Any]) -> list[str]:
    """The Redis keys a replay of this work reads, which its dead letter must keep alive.

    Attachments (restarted at ``download``): the URL vault entry. ``write.rows``: the row-stash
    entry (``args[1]``). Other work carries everything in its arguments. A payload of an
    unexpected shape holds nothing (the letter is still written)."""
    try:
        if _restarts_at_download(stage, task):
            return [UrlVault.redis_key(AttachmentJob.model_validate(payload).vault_key())]
        if task.endswith(f".{WRITE_ROWS}"):
            return [str(payload["args"][1])]
    except (ValueError, KeyError, IndexError, TypeError):
        pass
    return []


def resume(app: Celery, letter: DeadLetter) -> Signature:
    """The canvas that replays a dead letter with its original ids.

    Attachment letters restart at ``download`` (idempotent; the cached file of a failed upload
    may be gone); other letters re-send their own task with the original arguments.
    """
    if _restarts_at_download(letter.stage, letter.task_name):
        job = AttachmentJob.model_validate(letter.payload)
        fresh = job.for_new_run(refresh_count=0, context={**job.context, "replayed_from": letter.id})
        return attachment_chain(app, fresh)
    args = letter.payload.get("args", [])
    return signature(letter.task_name, args=tuple(args), app=app)
