"""The claimx event model (SPEC §2.6) and its ``claimx_events`` row (SPEC §4.8).

Contracts:

* :func:`parse_claimx_record` accepts a source row in camelCase (Eventhouse) or snake_case form and
  returns a validated :class:`ClaimXEvent`. ``event_id`` is ALWAYS derived with
  :func:`domains.ids.claimx_event_id` (DECISIONS "Identifiers"); a source ``event_id`` is ignored.
  ``ingested_at`` comes from ``ingested_at`` / ``IngestionTime`` / ``ingestion_time`` (or
  ``ingestedAt``) and otherwise from the Kafka record timestamp — never the wall clock.
* Anything unusable (bad JSON, not an object, missing/blank type or project, no usable time) raises
  :class:`ClaimXParseError`, a permanent error: the dispatcher dead-letters the record.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import PermanentError
from domains.claimx import coerce
from domains.ids import claimx_event_id


class ClaimXParseError(PermanentError):
    """A raw claimx record that cannot become an event. Never retried."""


class EventType(StrEnum):
    """The 12 handled event types (SPEC §2.6). Other strings are valid events that get skipped."""

    PROJECT_CREATED = "PROJECT_CREATED"
    PROJECT_MFN_ADDED = "PROJECT_MFN_ADDED"
    PROJECT_FILE_ADDED = "PROJECT_FILE_ADDED"
    CUSTOM_TASK_ASSIGNED = "CUSTOM_TASK_ASSIGNED"
    CUSTOM_TASK_COMPLETED = "CUSTOM_TASK_COMPLETED"
    POLICYHOLDER_INVITED = "POLICYHOLDER_INVITED"
    POLICYHOLDER_JOINED = "POLICYHOLDER_JOINED"
    VIDEO_COLLABORATION_INVITE_SENT = "VIDEO_COLLABORATION_INVITE_SENT"
    VIDEO_COLLABORATION_COMPLETED = "VIDEO_COLLABORATION_COMPLETED"
    PROJECT_AUTO_XA_LINKING_UNSUCCESSFUL = "PROJECT_AUTO_XA_LINKING_UNSUCCESSFUL"
    PERSONAL_PROPERTY_TASK_SHARED = "PERSONAL_PROPERTY_TASK_SHARED"
    PROJECT_CONVERSATION_UPDATED = "PROJECT_CONVERSATION_UPDATED"


class ClaimXEvent(BaseModel):
    """One claimx event. ``raw_data`` is kept for handlers and never serialised."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    event_type: str
    project_id: str
    ingested_at: datetime
    media_id: str | None = None
    task_assignment_id: str | None = None
    video_collaboration_id: str | None = None
    master_file_name: str | None = None
    raw_data: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False)

    @field_validator("event_id", "event_type", "project_id", mode="before")
    @classmethod
    def _required_text(cls, value: Any) -> str:
        result = coerce.text(value)
        if result is None:
            raise ValueError("must be a non-blank string")
        return result

    @field_validator(
        "media_id", "task_assignment_id", "video_collaboration_id", "master_file_name", mode="before"
    )
    @classmethod
    def _optional_text(cls, value: Any) -> str | None:
        return coerce.text(value)

    @field_validator("ingested_at", mode="after")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @property
    def known_type(self) -> EventType | None:
        """The :class:`EventType`, or ``None`` for a type this pipeline does not handle."""
        try:
            return EventType(self.event_type)
        except ValueError:
            return None


#: Source column spellings, first match wins.
_COLUMNS: dict[str, tuple[str, ...]] = {
    "event_type": ("event_type", "eventType", "EventType"),
    "project_id": ("project_id", "projectId", "ProjectId"),
    "media_id": ("media_id", "mediaId", "MediaId"),
    "task_assignment_id": ("task_assignment_id", "taskAssignmentId", "TaskAssignmentId"),
    "video_collaboration_id": ("video_collaboration_id", "videoCollaborationId", "VideoCollaborationId"),
    "master_file_name": ("master_file_name", "masterFileName", "MasterFileName"),
    "ingested_at": ("ingested_at", "IngestionTime", "ingestion_time", "ingestedAt"),
}


def parse_claimx_record(
    raw: bytes | str | dict[str, Any], *, kafka_timestamp: datetime | None
) -> ClaimXEvent:
    """Validate one source row into a :class:`ClaimXEvent` (see module contract)."""
    row = _load(raw)
    values = {field: _first(row, names) for field, names in _COLUMNS.items()}
    event_type = coerce.text(values["event_type"])
    project_id = coerce.text(values["project_id"])
    if event_type is None:
        raise ClaimXParseError("claimx record has no event type")
    if project_id is None:
        raise ClaimXParseError(f"claimx record of type {event_type} has no project id")
    ingested_at = _ingested_at(values["ingested_at"], kafka_timestamp)
    optional = {
        k: coerce.text(values[k])
        for k in ("media_id", "task_assignment_id", "video_collaboration_id", "master_file_name")
    }
    event_id = claimx_event_id(
        project_id,
        event_type,
        ingested_at,
        media_id=optional["media_id"],
        task_assignment_id=optional["task_assignment_id"],
        video_collaboration_id=optional["video_collaboration_id"],
    )
    try:
        return ClaimXEvent(
            event_id=event_id,
            event_type=event_type,
            project_id=project_id,
            ingested_at=ingested_at,
            raw_data=dict(row),
            **optional,
        )
    except ValidationError as exc:
        raise ClaimXParseError(f"invalid claimx record: {exc.errors()[0]['msg']}") from exc


def event_row(event: ClaimXEvent, *, now: datetime) -> dict[str, Any]:
    """The ``claimx_events`` row (SPEC §4.8): timestamps as ISO strings, ``event_date`` from ``ingested_at``."""
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "project_id": event.project_id,
        "media_id": event.media_id,
        "task_assignment_id": event.task_assignment_id,
        "video_collaboration_id": event.video_collaboration_id,
        "master_file_name": event.master_file_name,
        "ingested_at": coerce.iso(event.ingested_at),
        "created_at": coerce.iso(now),
        "event_date": event.ingested_at.astimezone(UTC).date().isoformat(),
    }


def _load(raw: bytes | str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ClaimXParseError(f"claimx record is not valid JSON: {exc.__class__.__name__}") from None
    if not isinstance(parsed, dict):
        raise ClaimXParseError(f"claimx record is not a JSON object (got {type(parsed).__name__})")
    return parsed


def _first(row: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = row.get(name)
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return value
    return None


def _ingested_at(value: Any, kafka_timestamp: datetime | None) -> datetime:
    if value is not None:
        parsed = _parse_time(value)
        if parsed is None:
            raise ClaimXParseError("claimx record has an unreadable ingestion time")
        return parsed
    if kafka_timestamp is None:
        raise ClaimXParseError("claimx record has no ingestion time and no record timestamp")
    parsed = coerce.parse_datetime(kafka_timestamp)
    assert parsed is not None  # a datetime always parses
    return parsed


def _parse_time(value: Any) -> datetime | None:
    """ISO strings and datetimes; numbers as epoch seconds, or milliseconds when > 1e11."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000 if abs(value) > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return coerce.parse_datetime(value)
