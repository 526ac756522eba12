"""Media, task and video-collaboration rows from ClaimX API items (SPEC §4.4.2–§4.4.4, DECISIONS).

Contracts:

* :func:`media_row` — ``task_assignment_id`` from ``taskAssignmentID`` or ``taskAssignmentId``;
  ``latitude``/``longitude`` floats; ``expires_at`` from ``expiresAt``, else derived from the
  presigned ``fullDownloadLink`` (SPEC §9.4), else ``None``. Timestamps are ISO strings.
* :func:`task_rows` — ``(task, template, external_link, contact)``, each ``None`` when its id
  (``assignmentId``, ``customTask.taskId``, ``externalLinkData.linkId``, ``externalLinkData.email``)
  is missing.
* :func:`pick_video_item` / :func:`video_row` — the item whose ``str(claimId)`` equals the project id,
  else the first; a row only when ``videoCollaborationId`` (or ``id``) is present.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.security.presigned import expires_at_iso
from domains.claimx.coerce import boolean, decimal_text, integer, number, text, timestamp
from domains.claimx.project_rows import Field, Row, contact_row, map_fields, stamps

_MEDIA_FIELDS: tuple[Field, ...] = (
    ("file_type", "mediaType", text),
    ("file_name", "mediaName", text),
    ("media_description", "mediaDescription", text),
    ("media_comment", "mediaComment", text),
    ("latitude", "latitude", number),
    ("longitude", "longitude", number),
    ("gps_source", "gpsSource", text),
    ("taken_date", "takenDate", timestamp),
    ("full_download_link", "fullDownloadLink", text),
)
_TASK_FIELDS: tuple[Field, ...] = (
    ("task_id", "taskId", integer),
    ("task_name", "taskName", text),
    ("form_id", "formId", text),
    ("assignee_id", "assigneeId", integer),
    ("assignor_id", "assignorId", integer),
    ("assignor_email", "assignor", text),
    ("date_assigned", "dateAssigned", timestamp),
    ("date_completed", "dateCompleted", timestamp),
    ("cancelled_date", "cancelledDate", timestamp),
    ("cancelled_by_resource_id", "cancelledByResourceId", integer),
    ("status", "status", text),
    ("pdf_project_media_id", "pdfProjectMediaId", integer),
    ("date_exported", "dateExported", timestamp),
    ("form_response_id", "formResponseId", text),
    ("stp_enabled", "stpEnabled", boolean),
    ("stp_started_date", "stpStartedDate", timestamp),
    ("mfn", "mfn", text),
    ("xactimate_exportable", "xactimateExportable", boolean),
    ("fraud_language_accepted_date", "fraudLanguageAcceptedDate", timestamp),
    ("resubmit_task_assignment_id", "resubmitTaskAssignmentId", integer),
    ("task_url", "url", text),
)
_TEMPLATE_FIELDS: tuple[Field, ...] = (
    ("task_id", "taskId", integer),
    ("comp_id", "compId", integer),
    ("name", "name", text),
    ("description", "description", text),
    ("form_id", "formId", text),
    ("form_name", "formName", text),
    ("enabled", "enabled", boolean),
    ("is_default", "default", boolean),
    ("is_manual_delivery", "isManualDelivery", boolean),
    ("is_external_link_delivery", "isExternalLinkDelivery", boolean),
    ("provide_portal_access", "providePortalAccess", boolean),
    ("notify_assigned_send_recipient", "notifyAssignedSendRecipient", boolean),
    ("notify_assigned_send_recipient_sms", "notifyAssignedSendRecipientSms", boolean),
    ("notify_assigned_subject", "notifyAssignedSubject", text),
    ("notify_task_completed", "notifyTaskCompleted", boolean),
    ("notify_completed_subject", "notifyCompletedSubject", text),
    ("allow_resubmit", "allowReSubmit", boolean),
    ("auto_generate_pdf", "autoGeneratePdf", boolean),
    ("modified_by", "modifiedBy", text),
    ("modified_by_id", "modifiedById", integer),
    ("modified_date", "modifiedDate", timestamp),
)
_LINK_FIELDS: tuple[Field, ...] = (
    ("link_id", "linkId", integer),
    ("link_code", "linkCode", text),
    ("url", "url", text),
    ("notification_access_method", "notificationAccessMethod", text),
    ("country_id", "countryId", integer),
    ("state_id", "stateId", integer),
)
_VIDEO_FIELDS: tuple[Field, ...] = (
    ("claim_id", "claimId", integer),
    ("mfn", "mfn", text),
    ("claim_number", "claimNumber", text),
    ("policy_number", "policyNumber", text),
    ("email_user_name", "emailUserName", text),
    ("claim_rep_first_name", "claimRepFirstName", text),
    ("claim_rep_last_name", "claimRepLastName", text),
    ("number_of_videos", "numberOfVideos", integer),
    ("number_of_photos", "numberOfPhotos", integer),
    ("number_of_viewers", "numberOfViewers", integer),
    ("session_count", "sessionCount", integer),
    ("total_time_seconds", "totalTimeSeconds", decimal_text),
    ("total_time", "totalTime", text),
    ("created_date", "createdDate", timestamp),
    ("live_call_first_session", "liveCallFirstSession", timestamp),
    ("live_call_last_session", "liveCallLastSession", timestamp),
    ("company_id", "companyId", integer),
    ("company_name", "companyName", text),
    ("guid", "guid", text),
)


def media_id_of(item: dict[str, Any]) -> str | None:
    """The item's ``mediaID`` as a canonical string (``880001`` and ``"880001"`` agree)."""
    value = item.get("mediaID", item.get("mediaId"))
    as_int = integer(value)
    return str(as_int) if as_int is not None else text(value)


def media_row(item: dict[str, Any], *, project_id: str, event_id: str, now: datetime) -> Row:
    """One ``claimx_attachment_metadata`` row (see module contract)."""
    assignment = item.get("taskAssignmentID")
    if assignment is None:
        assignment = item.get("taskAssignmentId")
    row: Row = {
        "media_id": media_id_of(item),
        "project_id": project_id,
        "task_assignment_id": text(assignment),
    }
    row.update(map_fields(item, _MEDIA_FIELDS))
    expires = timestamp(item.get("expiresAt"))
    if expires is None and row["full_download_link"]:
        expires = expires_at_iso(row["full_download_link"])
    row["expires_at"] = expires
    row.update(stamps(event_id, now))
    return row


def task_rows(
    task: dict[str, Any], *, project_id: str, assignment_id: str, event_id: str, now: datetime
) -> tuple[Row | None, Row | None, Row | None, Row | None]:
    """``(task, template, external_link, contact)`` rows of one custom-task response."""
    assignment = integer(task.get("assignmentId")) or integer(assignment_id)
    task_row: Row | None = None
    if task.get("assignmentId") is not None:
        task_row = {"assignment_id": assignment, "project_id": project_id}
        task_row.update(map_fields(task, _TASK_FIELDS))
        task_row.update(stamps(event_id, now))
    template: dict[str, Any] = found if isinstance(found := task.get("customTask"), dict) else {}
    template_row: Row | None = None
    if integer(template.get("taskId")) is not None:
        template_row = map_fields(template, _TEMPLATE_FIELDS)
        template_row.update(stamps(event_id, now))
    link: dict[str, Any] = found if isinstance(found := task.get("externalLinkData"), dict) else {}
    link_row: Row | None = None
    if integer(link.get("linkId")) is not None:
        link_row = {"assignment_id": assignment, "project_id": project_id}
        link_row.update(map_fields(link, _LINK_FIELDS))
        link_row.update({"created_date": None, "accessed_count": 0, "last_accessed": None})
        link_row.update(stamps(event_id, now, enriched=False))
    contact: Row | None = None
    email = text(link.get("email"))
    if email is not None:
        contact = contact_row(
            project_id,
            email,
            "POLICYHOLDER",
            event_id,
            now,
            first_name=text(link.get("firstName")),
            last_name=text(link.get("lastName")),
            phone_number=text(link.get("phone")),
            phone_country_code=integer(link.get("phoneCountryCode")),
            # None, not False: the task response knows nothing of the primary flag, and a merge
            # must not let it overwrite the project's answer (order of events would decide).
            is_primary_contact=None,
            task_assignment_id=assignment,
        )
    return task_row, template_row, link_row, contact


def pick_video_item(body: Any, project_id: str) -> dict[str, Any] | None:
    """Unwrap ``data``/``collaborations``/``videoCollaboration``; pick the project's item, else the first."""
    if isinstance(body, dict):
        for key in ("data", "collaborations", "videoCollaboration"):
            if key in body:
                body = body[key]
                break
    items = [body] if isinstance(body, dict) else body if isinstance(body, list) else []
    items = [item for item in items if isinstance(item, dict)]
    if not items:
        return None
    return next((i for i in items if str(i.get("claimId")).strip() == project_id), items[0])


def video_row(item: dict[str, Any], *, event_id: str, now: datetime) -> Row | None:
    """One ``claimx_video_collab`` row, or ``None`` without a collaboration id."""
    collab_id = integer(item.get("videoCollaborationId"))
    if collab_id is None:
        collab_id = integer(item.get("id"))
    if collab_id is None:
        return None
    row: Row = {"video_collaboration_id": collab_id}
    row.update(map_fields(item, _VIDEO_FIELDS))
    full_name = text(item.get("claimRepFullName"))
    if full_name is None:
        parts = [row["claim_rep_first_name"], row["claim_rep_last_name"]]
        full_name = " ".join(p for p in parts if p) or None
    row["claim_rep_full_name"] = full_name
    row.update(stamps(event_id, now))
    return row
