"""The xact Delta tables (SPEC §3.7, §3.8; DECISIONS "xact"): schemas, keys, merge modes.

Column order is the table's column order; the traceability column is ``event_id``.
"""

from __future__ import annotations

from domains.names import Table
from domains.tables import DATE, INT, STR, TS, MergeMode, schema, strings, table

#: SPEC §3.8, the 31 CURRENT columns in order.
XACT_EVENTS = schema(
    ("type", STR),
    ("status_subtype", STR),
    ("version", STR),
    ("ingested_at", TS),
    ("event_date", DATE),
    ("trace_id", STR),
    ("event_id", STR),
    *strings(
        "description",
        "assignment_id",
        "original_assignment_id",
        "xn_address",
        "carrier_id",
        "estimate_version",
        "note",
        "author",
        "sender_reviewer_name",
        "sender_reviewer_email",
        "carrier_reviewer_name",
        "carrier_reviewer_email",
        "event_datetime_mdt",
        "attachments",
        "claim_number",
        "contact_type",
        "contact_name",
        "contact_phone_type",
        "contact_phone_number",
        "contact_phone_extension",
        "contact_email_address",
        "raw_json",
    ),
    ("created_at", TS),
    ("created_date", DATE),
)

#: SPEC §3.7, the 11 CURRENT columns.
XACT_ATTACHMENTS = schema(
    *strings(
        "media_id", "trace_id", "attachment_url", "blob_path", "file_type", "status_subtype", "assignment_id"
    ),
    ("bytes_downloaded", INT),
    ("downloaded_at", TS),
    ("created_at", TS),
    ("event_date", DATE),
)

#: SPEC §3.7 failed table plus the columns that say where and why (DECISIONS: ``rejected`` at dispatch).
XACT_ATTACHMENTS_FAILED = schema(
    *strings("media_id", "trace_id", "attachment_url", "error_message", "status"),
    ("failed_at", TS),
    ("retry_count", INT),
    ("http_status", INT),
    ("created_at", TS),
    *strings("status_subtype", "assignment_id", "blob_path", "error_category"),
)

TABLES = (
    table(
        Table.XACT_EVENTS,
        XACT_EVENTS,
        ("trace_id",),
        MergeMode.INSERT_NEW,
        ("event_date",),
        (("event_date", "ingested_at"), ("event_date", "created_at"), ("created_date", "created_at")),
    ),
    table(
        Table.XACT_ATTACHMENTS,
        XACT_ATTACHMENTS,
        ("media_id",),
        MergeMode.INSERT_NEW,
        ("event_date",),
        (("event_date", "created_at"),),
    ),
    table(Table.XACT_ATTACHMENTS_FAILED, XACT_ATTACHMENTS_FAILED, ("media_id",), MergeMode.UPSERT),
)
