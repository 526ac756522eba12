"""What a domain is to the pipeline: a :class:`DomainSpec` (STYLE §2: the pipeline is data).

A domain plug-in is a module with a ``spec()`` function returning a :class:`DomainSpec`. The spec
declares everything the domain-neutral machinery (``dispatcher``, ``tasks``, ``writers``) needs:

* how to parse a raw record and plan a batch of events (:class:`EventPlan`: rows to write now,
  attachment jobs, units of follow-up work for the domain's ``enrich`` stage);
* its tables (schemas, keys, merge modes) and which of them holds the event rows;
* its stages, derived from what it declares: ``enrich`` when it has an enricher, the attachment
  chain (:data:`ATTACHMENT_CHAIN`) when it has attachments, ``write`` always;
* its hooks: the inventory row of a stored attachment, the failed row of a lost one, the
  recovered row of a replayed one, how to refresh a refused download link, its per-process
  resources (an API client), the fields that key its Kafka records.

``domains.registry`` collects the specs; nothing outside a domain's folder names a domain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis

from core.errors import PipelineError
from core.settings import Settings
from domains.attachments import AttachmentJob
from domains.names import Domain, Stage, Table
from domains.tables import TableSpec

#: Task-name suffixes of the two write tasks.
WRITE_ROWS = "rows"
WRITE_INVENTORY = "inventory"

#: The chain every attachment goes through, declared once: (stage, task-name suffix).
ATTACHMENT_CHAIN: tuple[tuple[Stage, str], ...] = (
    (Stage.DOWNLOAD, ""),
    (Stage.UPLOAD, ""),
    (Stage.WRITE, WRITE_INVENTORY),
)


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
    """Rows to write now (the event row; rejected attachments; entity rows after enrich)."""
    attachments: list[tuple[AttachmentJob, str]] = field(default_factory=list)
    """Attachment jobs and their real URLs (the URL goes to the vault, never into the task)."""
    enrich: list[dict[str, Any]] | None = None
    """The events one ``{domain}.enrich`` task handles (claimx batches a project's media events)."""
    counters: dict[str, int] = field(default_factory=dict)


@dataclass
class EnrichOutcome:
    """What one enrich unit produced. The task enqueues ``plans`` (rows, attachment chains) the
    way the dispatcher does, dead-letters each of ``failed`` on its own, and retries the whole
    unit when ``retry`` is set (enrichers are idempotent)."""

    plans: list[EventPlan] = field(default_factory=list)
    failed: list[tuple[dict[str, Any], str, PipelineError]] = field(default_factory=list)
    """(the event's payload, its key, the permanent error) per event that failed for good."""
    retry: PipelineError | None = None
    counters: dict[str, int] = field(default_factory=dict)


PlanBatch = Callable[[Sequence[ParsedEvent], datetime], list[EventPlan]]
#: (the domain's resources, the unit's event payloads, now) -> outcome. Raising fails the unit.
Enricher = Callable[[Any, list[dict[str, Any]], datetime], EnrichOutcome]


def _no_row(_job: AttachmentJob, _now: datetime) -> tuple[Table, dict[str, Any]] | None:
    return None


def _no_failed_row(
    _job: AttachmentJob, _url: str | None, _err: PipelineError, _now: datetime
) -> tuple[Table, dict[str, Any]] | None:
    return None


def _not_refreshable(_job: AttachmentJob, _err: PipelineError) -> bool:
    return False


@dataclass(frozen=True)
class DomainSpec:
    domain: Domain
    parse: Callable[[bytes, datetime | None], ParsedEvent]
    """Raw Kafka value (+ record timestamp) -> parsed event; raises PermanentError when invalid."""
    planner: Callable[[Settings], PlanBatch]
    """Settings -> the batch planner (built once per dispatcher)."""
    event_table: Table
    tables: tuple[TableSpec, ...]
    """Every table the domain writes (the event table included)."""
    inventory_row: Callable[[AttachmentJob, str | None, datetime], tuple[Table, dict[str, Any]]] | None = None
    """(stored job, its real URL from the vault, now) -> (table, row). ``None``: no attachments."""
    failed_row: Callable[
        [AttachmentJob, str | None, PipelineError, datetime], tuple[Table, dict[str, Any]] | None
    ] = _no_failed_row
    """A dead-lettered attachment's row (xact keeps ``xact_attachments_failed``); ``None``: none."""
    recovered_row: Callable[[AttachmentJob, datetime], tuple[Table, dict[str, Any]] | None] = _no_row
    """A replayed attachment that now succeeded: the row that records the recovery, if any."""
    enrich: Enricher | None = None
    """The ``{domain}.enrich`` stage, when the domain has one."""
    context: Callable[[Settings, redis.Redis], Any] | None = None
    """The domain's per-process resources (an API client), given to ``enrich`` and ``refresh_url``."""
    refreshable: Callable[[AttachmentJob, PipelineError], bool] = _not_refreshable
    """Whether a failed download's link can be re-issued (claimx: an expired presigned link)."""
    refresh_url: Callable[[Any, AttachmentJob], str] | None = None
    """(resources, job) -> a fresh download URL."""
    record_key_fields: tuple[str, ...] = ()
    """Fields of a raw event, first non-empty wins, that key its Kafka record (one partition)."""
    poll_tiebreak_column: str | None = None
    """The Eventhouse poller's tie-break column for rows of one ingestion time (SPEC §2.2 C)."""
    poll_default_table: str = "Events"
    """The Eventhouse table polled when ``{DOMAIN}_EVENTHOUSE_TABLE`` is not set."""

    @property
    def has_attachments(self) -> bool:
        return self.inventory_row is not None

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The domain's stages in the order work passes them; each is one queue."""
        stages = [Stage.ENRICH] if self.enrich is not None else []
        if self.has_attachments:
            stages += [stage for stage, _ in ATTACHMENT_CHAIN]
        if Stage.WRITE not in stages:
            stages.append(Stage.WRITE)
        return tuple(stages)

    def table_names(self) -> frozenset[Table]:
        return frozenset(t.name for t in self.tables)
