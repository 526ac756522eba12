"""Deterministic identifiers (SPEC §1.4, DECISIONS "Identifiers").

Every id is a UUIDv5 under one of three project-private namespaces. The namespaces were generated
once with ``uuid4`` and are part of the data contract: changing one changes every id already
written to the lake, breaks dedup and orphans dead letters. Never change them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

XACT_EVENT_NS = uuid.UUID("47fa41fa-7fe2-466a-948c-a6c7beba7870")
XACT_MEDIA_NS = uuid.UUID("2fd3d76c-47a4-4fad-b956-b0b256b62ea5")
CLAIMX_EVENT_NS = uuid.UUID("5fba475a-372f-46fc-9ba2-ea0cf797ad01")

IdPart = str | int


def xact_event_id(trace_id: str) -> str:
    """UUIDv5(``XACT_EVENT_NS``, trace_id): the same trace id always gets the same event id."""
    return str(uuid.uuid5(XACT_EVENT_NS, trace_id))


def xact_media_id(trace_id: str, attachment_url: str) -> str:
    """UUIDv5(``XACT_MEDIA_NS``, ``"{trace_id}:{attachment_url}"``): one id per attachment."""
    return str(uuid.uuid5(XACT_MEDIA_NS, f"{trace_id}:{attachment_url}"))


def claimx_event_id(
    project_id: IdPart,
    event_type: str,
    ingested_at: datetime,
    media_id: IdPart | None = None,
    task_assignment_id: IdPart | None = None,
    video_collaboration_id: IdPart | None = None,
) -> str:
    """UUIDv5(``CLAIMX_EVENT_NS``, key) for a claimx event.

    ``key`` = ``"{project_id}|{event_type}|{iso}"`` followed, for each optional id that is not
    ``None`` or ``""``, by ``"|media:{media_id}"``, ``"|task:{task_assignment_id}"``,
    ``"|video:{video_collaboration_id}"`` in that order. Ids are formatted with ``str()`` so
    ``5010001`` and ``"5010001"`` give the same key.

    ``iso`` is :func:`claimx_ingested_at_iso`: ``ingested_at`` converted to UTC and formatted as
    ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00`` — always six fractional digits and an explicit
    ``+00:00`` offset, e.g. ``2026-01-05T14:02:11.120000+00:00``. A naive datetime is taken as UTC.
    So the same instant gives the same id whatever its source time zone or precision.
    """
    parts = [str(project_id), event_type, claimx_ingested_at_iso(ingested_at)]
    for label, value in (
        ("media", media_id),
        ("task", task_assignment_id),
        ("video", video_collaboration_id),
    ):
        if value is not None and str(value) != "":
            parts.append(f"{label}:{value}")
    return str(uuid.uuid5(CLAIMX_EVENT_NS, "|".join(parts)))


def claimx_ingested_at_iso(ingested_at: datetime) -> str:
    """The normalised instant used in claimx ids: UTC, microseconds, ``+00:00`` (naive ⇒ UTC)."""
    if ingested_at.tzinfo is None:
        ingested_at = ingested_at.replace(tzinfo=UTC)
    return ingested_at.astimezone(UTC).isoformat(timespec="microseconds")
