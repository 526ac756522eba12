"""Outcomes of attachment work, for every domain: the ``done`` marker, the failure record, and
the task class every attachment stage (``download``, ``upload``, ``write.inventory``) shares.

What a row looks like is the domain's business (its spec's ``inventory_row``, ``failed_row`` and
``recovered_row`` hooks); when they are written, and the marker that makes a re-run of a stored
attachment a no-op, are decided here once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from core import keys
from core.errors import PipelineError
from domains import registry
from domains.attachments import AttachmentJob
from domains.names import Domain, Stage
from domains.registry import spec_of
from tasks.application import app, register_stage_task
from tasks.base import FailureHook, StageTask, utcnow
from tasks.canvas import write_rows
from tasks.runtime import Runtime


def is_done(rt: Runtime, job: AttachmentJob) -> bool:
    """The attachment's inventory row was staged: a repeat of its chain has nothing to do."""
    return bool(rt.redis.exists(keys.done(job.domain.value, job.media_id)))


def mark_done(rt: Runtime, job: AttachmentJob, *, pipe: Any = None) -> None:
    """``pipe``: queue the marker on the caller's pipeline or transaction (it executes)."""
    client = rt.redis if pipe is None else pipe
    client.set(keys.done(job.domain.value, job.media_id), job.destination or "1", ex=keys.DONE_TTL_SECONDS)


def record_attachment_failure(rt: Runtime, payload: dict[str, Any], err: PipelineError) -> None:
    """The chain ended in a dead letter: it is no longer in flight, and the domain's failed row
    (if it keeps one) is written."""
    job = AttachmentJob.model_validate(payload)
    rt.pending.done(job.vault_key())
    failed = spec_of(job.domain).failed_row(job, rt.vault.get(job.vault_key()), err, utcnow())
    if failed is not None:
        table, row = failed
        write_rows(app, job.domain, table, [row], rt.stash).apply_async()


class AttachmentStageTask(StageTask):
    """A stage of an attachment chain: its dead letter holds the job (never a local cache path)
    keyed by media id, and a dead letter ends the chain's record (:func:`record_attachment_failure`)."""

    abstract = True
    on_dead: ClassVar[FailureHook | None] = staticmethod(record_attachment_failure)

    def letter(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[dict[str, Any], str]:
        payload = dict(args[0] if args else kwargs["payload"])
        # A dead letter keeps ids and references, never a local path (replay re-downloads anyway).
        payload["local_path"] = None
        return payload, str(payload.get("media_id", ""))


def register_attachment_stage(
    stage: Stage,
    run: Callable[[StageTask, Domain, dict[str, Any]], dict[str, Any] | None],
    what: str = "",
    *,
    fold_start: bool = False,
) -> None:
    """Register ``{domain}.{stage}[.what]`` for every registered domain with attachments
    (``fold_start``: see :class:`~tasks.base.StageTask`)."""
    for domain, spec in registry.specs().items():
        if not spec.has_attachments:
            continue

        def _task(
            self: StageTask, payload: dict[str, Any], _domain: Domain = domain
        ) -> dict[str, Any] | None:
            return run(self, _domain, payload)

        register_stage_task(
            _task,
            base=AttachmentStageTask,
            domain=domain,
            stage=stage,
            what=what,
            doc=f"{domain.value} {stage.value} of one attachment job (see {run.__module__}).",
            fold_start=fold_start,
        )
