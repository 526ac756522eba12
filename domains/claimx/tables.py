"""The claimx Delta tables (SPEC §4.5, §4.8; DECISIONS "claimx"): schemas, keys, merge modes.

Column order is the table's column order; the traceability column is ``event_id``.
"""

from __future__ import annotations

from domains.names import Table
from domains.tables import BOOL, DATE, FLOAT, INT, STR, TS, MergeMode, schema, strings, table

#: SPEC §4.8.
CLAIMX_EVENTS = schema(
    *strings(
        "event_id",
        "event_type",
        "project_id",
        "media_id",
        "task_assignment_id",
        "video_collaboration_id",
        "master_file_name",
    ),
    ("ingested_at", TS),
    ("created_at", TS),
    ("event_date", DATE),
)

#: LEGACY superset of SPEC §4.4.1/§4.5 plus the policyholder timestamps (DECISIONS, fixes §14.23).
CLAIMX_PROJECTS = schema(
    *strings(
        "project_id",
        "project_number",
        "master_file_name",
        "secondary_number",
        "status",
        "created_date",
        "date_of_loss",
        "type_of_loss",
        "cause_of_loss",
        "loss_description",
        "customer_first_name",
        "customer_last_name",
        "custom_business_name",
        "business_line_type",
    ),
    ("year_built", INT),
    ("square_footage", INT),
    *strings(
        "street1",
        "street2",
        "city",
        "state_province",
        "zip_postcode",
        "county",
        "country",
        "primary_email",
        "primary_phone",
    ),
    ("primary_phone_country_code", INT),
    *strings(
        "date_received",
        "date_contacted",
        "planned_inspection_date",
        "date_inspected",
        "appointment_date",
        "custom_attribute1",
        "custom_attribute2",
        "custom_attribute3",
        "custom_external_unique_id",
        "company_name",
        "coverages",
    ),
    ("contents_task_sent", BOOL),
    ("contents_task_at", TS),
    ("xa_autolink_fail", BOOL),
    ("xa_autolink_fail_at", TS),
    ("policyholder_invited_at", TS),
    ("policyholder_joined_at", TS),
    ("event_id", STR),
    ("created_at", TS),
    ("updated_at", TS),
    ("last_enriched_at", TS),
)

#: SPEC §4.5 (task_assignment_id widened to int64 like every other assignment id; updated_at a timestamp).
CLAIMX_CONTACTS = schema(
    *strings("project_id", "contact_email", "contact_type", "first_name", "last_name", "phone_number"),
    ("phone_country_code", INT),
    ("is_primary_contact", BOOL),
    ("master_file_name", STR),
    ("task_assignment_id", INT),
    ("video_collaboration_id", STR),
    ("event_id", STR),
    ("created_at", TS),
    ("updated_at", TS),
    ("last_enriched_at", TS),
    ("created_date", DATE),
)

#: SPEC §4.5 with latitude/longitude as doubles (DECISIONS); processing times as timestamps.
CLAIMX_ATTACHMENT_METADATA = schema(
    *strings(
        "media_id",
        "project_id",
        "task_assignment_id",
        "file_type",
        "file_name",
        "media_description",
        "media_comment",
    ),
    ("latitude", FLOAT),
    ("longitude", FLOAT),
    *strings("gps_source", "taken_date", "full_download_link"),
    ("expires_at", TS),
    ("event_id", STR),
    ("created_at", TS),
    ("updated_at", TS),
    ("last_enriched_at", TS),
)

#: SPEC §4.5 plus every task field of §4.4.3 (LEGACY extras included: nothing mapped is dropped).
CLAIMX_TASKS = schema(
    ("assignment_id", INT),
    ("task_id", INT),
    ("task_name", STR),
    ("form_id", STR),
    ("project_id", STR),
    ("assignee_id", INT),
    ("assignor_id", INT),
    ("assignor_email", STR),
    ("date_assigned", STR),
    ("date_completed", STR),
    ("cancelled_date", STR),
    ("cancelled_by_resource_id", INT),
    ("status", STR),
    ("pdf_project_media_id", INT),
    ("date_exported", STR),
    ("form_response_id", STR),
    ("stp_enabled", BOOL),
    ("stp_started_date", STR),
    ("mfn", STR),
    ("xactimate_exportable", BOOL),
    ("fraud_language_accepted_date", STR),
    ("resubmit_task_assignment_id", INT),
    ("task_url", STR),
    ("event_id", STR),
    ("created_at", TS),
    ("updated_at", TS),
    ("last_enriched_at", TS),
)

#: SPEC §4.5.
CLAIMX_TASK_TEMPLATES = schema(
    ("task_id", INT),
    ("comp_id", INT),
    *strings("name", "description", "form_id", "form_name"),
    *[
        (name, BOOL)
        for name in (
            "enabled",
            "is_default",
            "is_manual_delivery",
            "is_external_link_delivery",
            "provide_portal_access",
            "notify_assigned_send_recipient",
            "notify_assigned_send_recipient_sms",
        )
    ],
    ("notify_assigned_subject", STR),
    ("notify_task_completed", BOOL),
    ("notify_completed_subject", STR),
    ("allow_resubmit", BOOL),
    ("auto_generate_pdf", BOOL),
    ("modified_by", STR),
    ("modified_by_id", INT),
    ("modified_date", STR),
    ("event_id", STR),
    ("created_at", TS),
    ("updated_at", TS),
    ("last_enriched_at", TS),
)

#: SPEC §4.5 (processing times as timestamps).
CLAIMX_EXTERNAL_LINKS = schema(
    ("link_id", INT),
    ("assignment_id", INT),
    *strings("project_id", "link_code", "url", "notification_access_method"),
    ("country_id", INT),
    ("state_id", INT),
    ("created_date", STR),
    ("accessed_count", INT),
    ("last_accessed", STR),
    ("event_id", STR),
    ("created_at", TS),
    ("updated_at", TS),
)

#: SPEC §4.5.
CLAIMX_VIDEO_COLLAB = schema(
    ("video_collaboration_id", INT),
    ("claim_id", INT),
    *strings(
        "mfn",
        "claim_number",
        "policy_number",
        "email_user_name",
        "claim_rep_first_name",
        "claim_rep_last_name",
        "claim_rep_full_name",
    ),
    *[(name, INT) for name in ("number_of_videos", "number_of_photos", "number_of_viewers", "session_count")],
    *strings(
        "total_time_seconds",
        "total_time",
        "created_date",
        "live_call_first_session",
        "live_call_last_session",
    ),
    ("company_id", INT),
    ("company_name", STR),
    ("guid", STR),
    ("event_id", STR),
    ("created_at", TS),
    ("updated_at", TS),
    ("last_enriched_at", TS),
)

#: Inventory of uploaded ClaimX media (brief; SPEC §4.8 names unified on ``event_id``/``bytes_downloaded``).
CLAIMX_ATTACHMENTS = schema(
    *strings("media_id", "project_id", "event_id", "file_name", "file_type", "blob_path"),
    ("bytes_downloaded", INT),
    ("content_type", STR),
    ("downloaded_at", TS),
    ("created_at", TS),
    ("updated_at", TS),
)

TABLES = (
    table(
        Table.CLAIMX_EVENTS,
        CLAIMX_EVENTS,
        ("event_id",),
        MergeMode.INSERT_NEW,
        ("event_date",),
        (("event_date", "ingested_at"), ("event_date", "created_at")),
    ),
    table(Table.CLAIMX_PROJECTS, CLAIMX_PROJECTS, ("project_id",), MergeMode.UPSERT),
    table(
        Table.CLAIMX_CONTACTS,
        CLAIMX_CONTACTS,
        ("project_id", "contact_email", "contact_type"),
        MergeMode.UPSERT,
        derived_dates=(("created_date", "created_at"),),
    ),
    table(Table.CLAIMX_ATTACHMENT_METADATA, CLAIMX_ATTACHMENT_METADATA, ("media_id",), MergeMode.UPSERT),
    table(Table.CLAIMX_TASKS, CLAIMX_TASKS, ("assignment_id",), MergeMode.UPSERT),
    table(Table.CLAIMX_TASK_TEMPLATES, CLAIMX_TASK_TEMPLATES, ("task_id",), MergeMode.UPSERT_IF_MODIFIED),
    table(Table.CLAIMX_EXTERNAL_LINKS, CLAIMX_EXTERNAL_LINKS, ("link_id",), MergeMode.UPSERT),
    table(Table.CLAIMX_VIDEO_COLLAB, CLAIMX_VIDEO_COLLAB, ("video_collaboration_id",), MergeMode.UPSERT),
    table(Table.CLAIMX_ATTACHMENTS, CLAIMX_ATTACHMENTS, ("media_id",), MergeMode.UPSERT),
)
