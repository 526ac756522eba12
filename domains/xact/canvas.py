"""The xact canvas, declared once (DECISIONS "xact canvas").

Per event: one ``write`` of the ``xact_events`` row; per valid attachment
``download -> upload -> write(xact_attachments)``. An attachment refused at dispatch (bad URL,
event without ``assignmentId``) is recorded in ``xact_attachments_failed`` with status
``rejected``, so every attachment of every event has an outcome.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from core.errors import PermanentError
from core.observability import Metric
from core.security.redact import sanitize_url
from core.security.urls import UrlPolicy, validate_url
from core.settings import Settings
from domains.attachments import AttachmentJob
from domains.canvas import EventPlan, ParsedEvent, PlanBatch
from domains.ids import xact_event_id, xact_media_id
from domains.names import Domain, Table
from domains.xact.flatten import failed_row, flatten_event
from domains.xact.models import XactEvent, parse_xact_record
from domains.xact.paths import plan_attachments

REJECTED = "rejected"


def parse(raw: bytes, _timestamp: datetime | None) -> ParsedEvent:
    """Decode once; the row (kept for ``raw_json``) and the event come from the same object."""
    try:
        row = json.loads(raw)
    except (ValueError, RecursionError):
        parse_xact_record(raw)  # raises the named XactParseError for this input
        raise
    event = parse_xact_record(row)
    event_id = xact_event_id(event.trace_id)
    return ParsedEvent(Domain.XACT, event_id, event.with_event_id(event_id), row)


def _rejected(
    event: XactEvent, url: str, media_id: str, blob_path: str | None, reason: str, now: datetime
) -> dict[str, Any]:
    return failed_row(
        media_id=media_id,
        trace_id=event.trace_id,
        attachment_url=url,
        blob_path=blob_path,
        status_subtype=event.status_subtype,
        assignment_id=event.assignment_id,
        status=REJECTED,
        error_message=reason,
        error_category="permanent",
        http_status=None,
        retry_count=0,
        failed_at=now,
        now=now,
    )


def plan_event(parsed: ParsedEvent, policy: UrlPolicy, now: datetime) -> EventPlan:
    event: XactEvent = parsed.event
    plan = EventPlan(Domain.XACT, parsed.event_id)
    plan.rows[Table.XACT_EVENTS] = [flatten_event(event, parsed.raw, event_id=parsed.event_id, now=now)]
    failed: list[dict[str, Any]] = []
    if not event.attachments:
        plan.counters[Metric.EVENTS_WITHOUT_ATTACHMENTS] = 1
    elif not event.assignment_id:
        plan.counters[Metric.EVENTS_MISSING_ASSIGNMENT_ID] = 1
        failed = [
            _rejected(
                event,
                url,
                xact_media_id(event.trace_id, url),
                None,
                "Missing assignmentId: attachment not downloaded",
                now,
            )
            for url in event.attachments
        ]
    else:
        for item in plan_attachments(event):
            try:
                validate_url(item.attachment_url, policy, resolve=False)
            except PermanentError as err:
                failed.append(
                    _rejected(event, item.attachment_url, item.media_id, item.blob_path, err.message, now)
                )
                continue
            job = AttachmentJob(
                domain=Domain.XACT,
                media_id=item.media_id,
                event_id=parsed.event_id,
                url_display=sanitize_url(item.attachment_url),
                blob_path=item.blob_path,
                file_name=item.file_name,
                file_type=item.file_type,
                check_expiry=True,
                context={
                    "trace_id": event.trace_id,
                    "assignment_id": event.assignment_id,
                    "status_subtype": event.status_subtype,
                },
            )
            plan.attachments.append((job, item.attachment_url))
    if failed:
        plan.rows[Table.XACT_ATTACHMENTS_FAILED] = failed
        plan.counters[Metric.ATTACHMENTS_REJECTED] = len(failed)
    plan.counters[Metric.ATTACHMENTS_DISPATCHED] = len(plan.attachments)
    return plan


def planner(settings: Settings) -> PlanBatch:
    """The batch planner, with the URL policy built once from ``settings``."""
    policy = UrlPolicy.from_settings(settings)

    def plan_batch(events: Sequence[ParsedEvent], now: datetime) -> list[EventPlan]:
        return [plan_event(p, policy, now) for p in events]

    return plan_batch
