"""Recorded outcomes of attachment work: the inventory row on success, the failed row on a
permanent failure (xact), and the ``done`` marker that makes a re-run a no-op."""

from __future__ import annotations

from typing import Any

from core.errors import PipelineError
from core.security.redact import sanitize_error
from domains.attachments import AttachmentJob
from domains.names import Domain, Table
from tasks.runtime import Runtime

DONE_PREFIX = "pipeline:done"
DONE_TTL_SECONDS = 30 * 24 * 3600


def inventory_row(job: AttachmentJob, url: str | None, now) -> tuple[Table, dict[str, Any]]:  # noqa: ANN001
    """The inventory row; ``url`` is the real attachment URL from the vault (SPEC keeps it)."""
    if job.domain is Domain.XACT:
        from domains.xact.flatten import attachment_row

        return Table.XACT_ATTACHMENTS, attachment_row(
            media_id=job.media_id,
            trace_id=job.context.get("trace_id"),
            attachment_url=url or job.url_display,
            blob_path=job.blob_path,
            file_type=job.file_type,
            status_subtype=job.context.get("status_subtype"),
            assignment_id=job.context.get("assignment_id"),
            bytes_downloaded=job.bytes_downloaded or 0,
            downloaded_at=job.downloaded_at or now,
            now=now,
        )
    return Table.CLAIMX_ATTACHMENTS, {
        "media_id": job.media_id,
        "project_id": job.context.get("project_id"),
        "event_id": job.event_id,
        "file_name": job.file_name,
        "file_type": job.file_type,
        "blob_path": job.blob_path,
        "bytes_downloaded": job.bytes_downloaded or 0,
        "content_type": job.content_type,
        "downloaded_at": (job.downloaded_at or now).isoformat(),
        "created_at": now.isoformat(),
        "updated_at": now.isoformat(),
    }


def recovered_row(job: AttachmentJob, now) -> dict[str, Any] | None:  # noqa: ANN001
    """xact: a replayed attachment that now succeeded turns its failed row into ``recovered``.

    A partial row: the merge keeps every column it does not carry (URL, failure time, …)."""
    letter_id = job.context.get("replayed_from")
    if job.domain is not Domain.XACT or not letter_id:
        return None
    return {
        "media_id": job.media_id,
        "status": "recovered",
        "error_message": f"recovered by replaying dead letter {letter_id}",
        "created_at": now.isoformat(),
    }


def record_attachment_failure(rt: Runtime, payload: dict[str, Any], err: PipelineError) -> None:
    """The chain ended in a dead letter: it is no longer in flight; xact also keeps the failure
    in ``xact_attachments_failed``."""
    job = AttachmentJob.model_validate(payload)
    rt.pending.done(job.vault_key())
    if job.domain is not Domain.XACT:
        return
    from domains.xact.flatten import failed_row
    from tasks.application import app
    from tasks.base import utcnow
    from tasks.canvas import write_rows

    now = utcnow()
    row = failed_row(
        media_id=job.media_id,
        trace_id=job.context.get("trace_id"),
        attachment_url=rt.vault.get(job.vault_key()) or job.url_display,
        blob_path=job.blob_path,
        status_subtype=job.context.get("status_subtype"),
        assignment_id=job.context.get("assignment_id"),
        status="failed_permanent",
        error_message=sanitize_error(err.message),
        error_category=err.category.value,
        http_status=err.http_status,
        retry_count=0,
        failed_at=now,
        now=now,
    )
    write_rows(app, Domain.XACT, Table.XACT_ATTACHMENTS_FAILED, [row], rt.stash).apply_async()
