"""The xact domain as the pipeline sees it: one declaration (see ``domains.canvas.DomainSpec``).

Stages: ``download -> upload -> write`` per attachment, ``write`` of the event rows. Tables:
``xact_events``, ``xact_attachments`` (inventory) and ``xact_attachments_failed`` (an attachment
refused at dispatch, or dead-lettered, keeps a row there; a replay that succeeds marks it
``recovered``). Kafka records are keyed by trace id; the poller breaks ties on ``traceId``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.errors import PipelineError
from core.security.redact import sanitize_error
from domains.attachments import AttachmentJob
from domains.canvas import DomainSpec
from domains.names import Domain, Table
from domains.xact import canvas, tables
from domains.xact.flatten import attachment_row, failed_row

FAILED_PERMANENT = "failed_permanent"
RECOVERED = "recovered"


def inventory_row(job: AttachmentJob, url: str | None, now: datetime) -> tuple[Table, dict[str, Any]]:
    """The ``xact_attachments`` row; ``url`` is the real attachment URL from the vault (SPEC keeps it)."""
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


def lost_row(
    job: AttachmentJob, url: str | None, err: PipelineError, now: datetime
) -> tuple[Table, dict[str, Any]]:
    """The ``xact_attachments_failed`` row of an attachment whose chain ended in a dead letter."""
    return Table.XACT_ATTACHMENTS_FAILED, failed_row(
        media_id=job.media_id,
        trace_id=job.context.get("trace_id"),
        attachment_url=url or job.url_display,
        blob_path=job.blob_path,
        status_subtype=job.context.get("status_subtype"),
        assignment_id=job.context.get("assignment_id"),
        status=FAILED_PERMANENT,
        error_message=sanitize_error(err.message),
        error_category=err.category.value,
        http_status=err.http_status,
        retry_count=0,
        failed_at=now,
        now=now,
    )


def recovered_row(job: AttachmentJob, now: datetime) -> tuple[Table, dict[str, Any]] | None:
    """A replayed attachment that now succeeded turns its failed row into ``recovered``.

    A partial row: the merge keeps every column it does not carry (URL, failure time, …)."""
    letter_id = job.context.get("replayed_from")
    if not letter_id:
        return None
    return Table.XACT_ATTACHMENTS_FAILED, {
        "media_id": job.media_id,
        "status": RECOVERED,
        "error_message": f"recovered by replaying dead letter {letter_id}",
        "created_at": now.isoformat(),
    }


def spec() -> DomainSpec:
    return DomainSpec(
        domain=Domain.XACT,
        parse=canvas.parse,
        planner=canvas.planner,
        event_table=Table.XACT_EVENTS,
        tables=tables.TABLES,
        inventory_row=inventory_row,
        failed_row=lost_row,
        recovered_row=recovered_row,
        record_key_fields=("traceId", "trace_id"),
        poll_tiebreak_column="traceId",
    )
