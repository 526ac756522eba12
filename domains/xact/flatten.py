"""Rows for the xact Delta tables (SPEC §3.7, §3.8; DECISIONS "xact").

Every function returns a plain ``dict`` keyed by the table's columns, in column order, with
JSON-safe values: timestamps as ISO-8601 strings in UTC with an explicit offset
(``2026-01-05T14:02:11.120000+00:00``), dates as ``YYYY-MM-DD``. The Delta writer casts them to
the table schema. Naive datetimes passed in are taken as UTC.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from core.errors import truncate
from domains.xact.models import XactEvent
from domains.xact.tables import XACT_ATTACHMENTS, XACT_ATTACHMENTS_FAILED, XACT_EVENTS

# The row builders below return their table's columns in the table's order; the schemas in
# domains.xact.tables are the one home of those columns.
#: ``xact_events``: the 31 CURRENT columns of SPEC §3.8, in order.
XACT_EVENT_COLUMNS: tuple[str, ...] = tuple(XACT_EVENTS.names)

#: ``xact_attachments``: the 11 CURRENT columns of SPEC §3.7, in order (partition ``event_date``).
XACT_ATTACHMENT_COLUMNS: tuple[str, ...] = tuple(XACT_ATTACHMENTS.names)

#: ``xact_attachments_failed``: SPEC §3.7's columns plus where the file would have gone and why.
XACT_ATTACHMENT_FAILED_COLUMNS: tuple[str, ...] = tuple(XACT_ATTACHMENTS_FAILED.names)

#: Default ``error_message`` of a failed row (SPEC §3.7).
UNKNOWN_ERROR = "Unknown error"

# Column ← path inside ``data`` (SPEC §3.8). assignment_id/estimate_version come from the event.
_DATA_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("description", ("description",)),
    ("original_assignment_id", ("originalAssignmentId",)),
    ("xn_address", ("xnAddress",)),
    ("carrier_id", ("carrierId",)),
    ("note", ("note",)),
    ("author", ("author",)),
    ("sender_reviewer_name", ("senderReviewerName",)),
    ("sender_reviewer_email", ("senderReviewerEmail",)),
    ("carrier_reviewer_name", ("carrierReviewerName",)),
    ("carrier_reviewer_email", ("carrierReviewerEmail",)),
    ("event_datetime_mdt", ("dateTime",)),
    ("claim_number", ("adm", "coverageLoss", "claimNumber")),
    ("contact_type", ("contact", "type")),
    ("contact_name", ("contact", "name")),
    ("contact_phone_type", ("contact", "contactMethods", "phone", "type")),
    ("contact_phone_number", ("contact", "contactMethods", "phone", "number")),
    ("contact_phone_extension", ("contact", "contactMethods", "phone", "extension")),
    ("contact_email_address", ("contact", "contactMethods", "email", "address")),
)


def flatten_event(
    event: XactEvent, raw_row: dict[str, Any], *, event_id: str, now: datetime
) -> dict[str, Any]:
    """One ``xact_events`` row (SPEC §3.8) for ``event``.

    ``raw_row`` is the source record as received (``data`` possibly still a string); it becomes
    ``raw_json`` with sorted keys and no spaces. ``ingested_at``/``event_date`` come from the
    event's ``utcDateTime`` (event time), ``created_at``/``created_date`` from ``now``.
    ``event_id`` is the derived id (:func:`domains.ids.xact_event_id`). Extracted ``data`` values
    are strings: numbers via ``str``, booleans as ``true``/``false``, objects as compact JSON;
    a missing path or a non-object on the way is ``None``.
    """
    event_time = event.event_time
    created = _utc(now)
    row: dict[str, Any] = {
        "type": event.type,
        "status_subtype": event.status_subtype,
        "version": None if event.version is None else str(event.version),
        "ingested_at": _iso(event_time),
        "event_date": event_time.date().isoformat(),
        "trace_id": event.trace_id,
        "event_id": event_id,
        "assignment_id": event.assignment_id,
        "estimate_version": event.estimate_version,
        "attachments": _attachments_column(event.data.get("attachments")),
        "raw_json": json.dumps(raw_row, sort_keys=True, separators=(",", ":"), default=str),
        "created_at": _iso(created),
        "created_date": created.date().isoformat(),
    }
    for column, path in _DATA_COLUMNS:
        row[column] = _as_text(_dig(event.data, path))
    return {column: row[column] for column in XACT_EVENT_COLUMNS}


def attachment_row(
    *,
    media_id: str,
    trace_id: str | None,
    attachment_url: str,
    blob_path: str,
    file_type: str,
    status_subtype: str | None,
    assignment_id: str | None,
    bytes_downloaded: int,
    downloaded_at: datetime,
    now: datetime,
) -> dict[str, Any]:
    """One ``xact_attachments`` row for a stored file.

    ``downloaded_at`` is the result's ``created_at``; ``created_at`` is the write time ``now``;
    ``event_date`` (the partition) is the UTC date of ``downloaded_at``, so a re-run of the same
    write lands in the same partition.
    """
    downloaded = _utc(downloaded_at)
    return {
        "media_id": media_id,
        "trace_id": trace_id,
        "attachment_url": attachment_url,
        "blob_path": blob_path,
        "file_type": file_type,
        "status_subtype": status_subtype,
        "assignment_id": assignment_id,
        "bytes_downloaded": int(bytes_downloaded),
        "downloaded_at": _iso(downloaded),
        "created_at": _iso(_utc(now)),
        "event_date": downloaded.date().isoformat(),
    }


def failed_row(
    *,
    media_id: str,
    trace_id: str | None,
    attachment_url: str,
    blob_path: str | None,
    status_subtype: str | None,
    assignment_id: str | None,
    status: str,
    error_message: str | None,
    error_category: str | None,
    http_status: int | None,
    retry_count: int,
    failed_at: datetime,
    now: datetime,
) -> dict[str, Any]:
    """One ``xact_attachments_failed`` row (merge key ``media_id``).

    ``status`` is e.g. ``failed_permanent`` or ``rejected`` (URL refused at dispatch).
    ``error_message`` is truncated to 500 characters; blank ⇒ ``Unknown error``. It must already
    be free of secrets. ``error_category`` is stored as its string value.
    """
    message = (error_message or "").strip()
    return {
        "media_id": media_id,
        "trace_id": trace_id,
        "attachment_url": attachment_url,
        "error_message": truncate(message) if message else UNKNOWN_ERROR,
        "status": str(status),
        "failed_at": _iso(_utc(failed_at)),
        "retry_count": int(retry_count),
        "http_status": None if http_status is None else int(http_status),
        "created_at": _iso(_utc(now)),
        "status_subtype": status_subtype,
        "assignment_id": assignment_id,
        "blob_path": blob_path,
        "error_category": None if error_category is None else str(error_category),
    }


def _dig(data: dict[str, Any], path: tuple[str, ...]) -> object:
    value: object = data
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _as_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _attachments_column(value: object) -> str | None:
    if not isinstance(value, list):
        return None
    return ",".join(item for item in value if isinstance(item, str) and item)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")
