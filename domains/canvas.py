"""What a domain asks the pipeline to do for one event: the pipeline is data (STYLE §2).

A domain module exposes a :class:`DomainSpec`: how to parse a raw record and how to turn a
batch of parsed events into :class:`EventPlan` objects. ``tasks.canvas`` turns plans into Celery
signatures; the dispatcher only looks the spec up by domain. Adding a domain adds a folder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domains.attachments import AttachmentJob
from domains.names import Domain, Stage, Table

#: The stages every attachment goes through, in order (both domains).
ATTACHMENT_STAGES: tuple[Stage, ...] = (Stage.DOWNLOAD, Stage.UPLOAD, Stage.WRITE)


@dataclass
class ParsedEvent:
    domain: Domain
    event_id: str
    event: Any
    raw: dict[str, Any]


@dataclass
class EventPlan:
    domain: Domain
    event_id: str
    rows: dict[Table, list[dict[str, Any]]] = field(default_factory=dict)
    """Rows to write now (the event row; rejected attachments)."""
    attachments: list[tuple[AttachmentJob, str]] = field(default_factory=list)
    """Attachment jobs and their real URLs (the URL goes to the vault, never into the task)."""
    enrich: list[dict[str, Any]] | None = None
    """claimx: the events one enrich task handles (media events of one project are batched)."""
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DomainSpec:
    domain: Domain
    parse: Callable[[bytes, datetime | None], ParsedEvent]
    """Raw Kafka value (+ record timestamp) -> parsed event; raises PermanentError when invalid."""
    plan_batch: Callable[[Sequence[ParsedEvent], datetime], list[EventPlan]]
    event_table: Table
