"""The claimx canvas, declared once (DECISIONS "claimx canvas").

Per event: one ``write`` of the ``claimx_events`` row and ``enrich``. Media events
(``PROJECT_FILE_ADDED``) of one project arriving in one dispatch batch share one enrich task, so
the media handler can fetch them in one API call (SPEC §4.3). ``enrich`` writes the entity rows
and fans out ``download -> upload -> write(claimx_attachments)`` per media row with a link.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from domains.canvas import EventPlan, ParsedEvent
from domains.claimx.models import ClaimXEvent, event_row, parse_claimx_record
from domains.names import Domain, Table

MEDIA_EVENT = "PROJECT_FILE_ADDED"


def parse(raw: bytes, timestamp: datetime | None) -> ParsedEvent:
    event = parse_claimx_record(raw, kafka_timestamp=timestamp)
    return ParsedEvent(Domain.CLAIMX, event.event_id, event, dict(event.raw_data))


def _payload(event: ClaimXEvent) -> dict[str, Any]:
    return event.model_dump(mode="json")


def plan_batch(events: Sequence[ParsedEvent], now: datetime) -> list[EventPlan]:
    plans: list[EventPlan] = []
    media_groups: dict[str, EventPlan] = {}
    for parsed in events:
        event: ClaimXEvent = parsed.event
        plan = EventPlan(
            Domain.CLAIMX, parsed.event_id, rows={Table.CLAIMX_EVENTS: [event_row(event, now=now)]}
        )
        if event.event_type == MEDIA_EVENT:
            lead = media_groups.get(event.project_id)
            if lead is None:
                plan.enrich = [_payload(event)]
                media_groups[event.project_id] = plan
            else:
                lead.enrich.append(_payload(event))  # type: ignore[union-attr]  # a group lead always has a unit
        else:
            plan.enrich = [_payload(event)]
        plans.append(plan)
    return plans
