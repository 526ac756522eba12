"""The 12 claimx event handlers as pure functions of (event, API port, now, cache) (SPEC §4.3).

Contracts:

* Handlers RAISE on failure (DECISIONS "Handler errors are raised, not swallowed"): API errors keep
  their category (a project 404 is permanent); a task event without an assignment id raises
  ``PermanentError("Missing task_assignment_id")`` before any call; a media id absent from the API
  answer is ``PermanentError("Media <id> not found in API response")``.
* Project verification (media, task, video, policyholder events) goes through the
  :class:`ProjectCache`: a body cached within its TTL is reused (no API call) and its project and
  contact rows are emitted again; ``PROJECT_CREATED`` / ``PROJECT_MFN_ADDED`` always fetch and refresh
  the cache. ``cache=None`` means fetch every time.
* Flag rows (XA-linking, personal property, a policyholder event without a fetched project) carry
  only the columns they set plus ``project_id``, ``event_id``, ``updated_at``.
* Unknown event types return ``HandlerResult(skipped=True)``; a conversation event returns no rows.
* ``api_calls`` counts the API requests the handler made (cache hits are free).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from core.errors import PermanentError, PipelineError
from domains.claimx.api_errors import int_id
from domains.claimx.coerce import integer, iso, text
from domains.claimx.entity_rows import media_id_of, media_row, pick_video_item, task_rows, video_row
from domains.claimx.models import ClaimXEvent, EventType
from domains.claimx.ports import ApiPort
from domains.claimx.project_cache import ProjectCache
from domains.claimx.project_rows import Row, flag_row, project_rows, unwrap_project
from domains.names import Table

#: At most this many media ids are asked for by id; more ⇒ the project's full media list (SPEC §4.3).
BATCH_THRESHOLD = 5

_TABLE_OF = {
    "projects": Table.CLAIMX_PROJECTS,
    "contacts": Table.CLAIMX_CONTACTS,
    "media": Table.CLAIMX_ATTACHMENT_METADATA,
    "tasks": Table.CLAIMX_TASKS,
    "task_templates": Table.CLAIMX_TASK_TEMPLATES,
    "external_links": Table.CLAIMX_EXTERNAL_LINKS,
    "video_collab": Table.CLAIMX_VIDEO_COLLAB,
}


@dataclass
class EntityRows:
    """Rows per entity produced for one event (SPEC §4.5)."""

    projects: list[Row] = field(default_factory=list)
    contacts: list[Row] = field(default_factory=list)
    media: list[Row] = field(default_factory=list)
    tasks: list[Row] = field(default_factory=list)
    task_templates: list[Row] = field(default_factory=list)
    external_links: list[Row] = field(default_factory=list)
    video_collab: list[Row] = field(default_factory=list)

    def by_table(self) -> dict[Table, list[Row]]:
        """Non-empty entities keyed by their Delta table."""
        return {_TABLE_OF[f.name]: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    def counts(self) -> dict[str, int]:
        """Non-zero row counts by entity name (``{"projects": 1, "contacts": 3}``)."""
        return {f.name: len(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name)}

    @property
    def is_empty(self) -> bool:
        return not self.counts()


@dataclass
class HandlerResult:
    rows: EntityRows
    api_calls: int
    skipped: bool = False


Handler = Callable[[ClaimXEvent, ApiPort, datetime, "ProjectCache | None"], HandlerResult]


def handle(event: ClaimXEvent, api: ApiPort, *, now: datetime, cache: ProjectCache | None) -> HandlerResult:
    """Run the handler for ``event.event_type`` (see module contract)."""
    kind = event.known_type
    if kind is None:
        return HandlerResult(EntityRows(), api_calls=0, skipped=True)
    return _HANDLERS[kind](event, api, now, cache)


def handle_media_batch(
    events: list[ClaimXEvent], api: ApiPort, *, now: datetime, cache: ProjectCache | None
) -> dict[str, HandlerResult | PipelineError]:
    """Enrich ``PROJECT_FILE_ADDED`` events grouped by project; the outcome per ``event_id``.

    Per project: ≤ :data:`BATCH_THRESHOLD` distinct ids ⇒ ``media?mediaIds=…``, else the full list;
    then one project verification whose rows (and both calls) go to the group's first successful
    event. An API error fails every event of its group with that error; an event whose media id the API
    cannot take fails alone, before grouping.
    """
    outcomes: dict[str, HandlerResult | PipelineError] = {}
    groups: dict[str, list[ClaimXEvent]] = {}
    for event in events:
        if event.known_type is not EventType.PROJECT_FILE_ADDED:
            raise ValueError(f"not a media event: {event.event_type}")
        if not event.media_id:
            outcomes[event.event_id] = PermanentError("Missing media_id")
            continue
        try:  # per event, before grouping: one bad id must not fail its project's other media
            int_id("media id", event.media_id)
        except PipelineError as err:
            outcomes[event.event_id] = err
            continue
        groups.setdefault(event.project_id, []).append(event)
    for project_id, group in groups.items():
        outcomes.update(_media_group(project_id, group, api, now, cache))
    return outcomes


# --- handlers --------------------------------------------------------------------------------------


def _project(event: ClaimXEvent, api: ApiPort, now: datetime, cache: ProjectCache | None) -> HandlerResult:
    projects, contacts, calls = _verify(event, api, now, cache, refresh=True)
    if event.known_type is EventType.PROJECT_MFN_ADDED and event.master_file_name:
        if projects:
            projects[0]["master_file_name"] = event.master_file_name
        else:
            projects = [
                flag_row(event.project_id, event.event_id, now, master_file_name=event.master_file_name)
            ]
    return HandlerResult(EntityRows(projects=projects, contacts=contacts), api_calls=calls)


def _media(event: ClaimXEvent, api: ApiPort, now: datetime, cache: ProjectCache | None) -> HandlerResult:
    outcome = handle_media_batch([event], api, now=now, cache=cache)[event.event_id]
    if isinstance(outcome, PipelineError):
        raise outcome
    return outcome


def _task(event: ClaimXEvent, api: ApiPort, now: datetime, cache: ProjectCache | None) -> HandlerResult:
    if not event.task_assignment_id:
        raise PermanentError("Missing task_assignment_id")
    body = api.get_custom_task(event.task_assignment_id)
    project_id = text(body.get("projectId")) or event.project_id
    task, template, link, contact = task_rows(
        body, project_id=project_id, assignment_id=event.task_assignment_id, event_id=event.event_id, now=now
    )
    projects, contacts, calls = _verify(event, api, now, cache, project_id=project_id)
    rows = EntityRows(
        projects=projects,
        contacts=contacts + _some(contact),
        tasks=_some(task),
        task_templates=_some(template),
        external_links=_some(link),
    )
    return HandlerResult(rows, api_calls=1 + calls)


def _policyholder(
    event: ClaimXEvent, api: ApiPort, now: datetime, cache: ProjectCache | None
) -> HandlerResult:
    column = (
        "policyholder_invited_at"
        if event.known_type is EventType.POLICYHOLDER_INVITED
        else "policyholder_joined_at"
    )
    projects, contacts, calls = _verify(event, api, now, cache)
    if projects:
        projects[0][column] = iso(now)
    else:
        projects = [flag_row(event.project_id, event.event_id, now, **{column: iso(now)})]
    return HandlerResult(EntityRows(projects=projects, contacts=contacts), api_calls=calls)


def _video(event: ClaimXEvent, api: ApiPort, now: datetime, cache: ProjectCache | None) -> HandlerResult:
    item = pick_video_item(api.get_video_collaboration(event.project_id), event.project_id)
    row = video_row(item, event_id=event.event_id, now=now) if item is not None else None
    projects, contacts, calls = _verify(event, api, now, cache)
    rows = EntityRows(projects=projects, contacts=contacts, video_collab=_some(row))
    return HandlerResult(rows, api_calls=1 + calls)


def _xa_linking(event: ClaimXEvent, api: ApiPort, now: datetime, cache: ProjectCache | None) -> HandlerResult:
    row = flag_row(event.project_id, event.event_id, now, xa_autolink_fail=True, xa_autolink_fail_at=iso(now))
    return HandlerResult(EntityRows(projects=[row]), api_calls=0)


def _personal_property(
    event: ClaimXEvent, api: ApiPort, now: datetime, cache: ProjectCache | None
) -> HandlerResult:
    row = flag_row(
        event.project_id,
        event.event_id,
        now,
        contents_task_sent=True,
        contents_task_at=iso(event.ingested_at),
    )
    return HandlerResult(EntityRows(projects=[row]), api_calls=0)


def _conversation(
    event: ClaimXEvent, api: ApiPort, now: datetime, cache: ProjectCache | None
) -> HandlerResult:
    return HandlerResult(EntityRows(), api_calls=0)


_HANDLERS: dict[EventType, Handler] = {
    EventType.PROJECT_CREATED: _project,
    EventType.PROJECT_MFN_ADDED: _project,
    EventType.PROJECT_FILE_ADDED: _media,
    EventType.CUSTOM_TASK_ASSIGNED: _task,
    EventType.CUSTOM_TASK_COMPLETED: _task,
    EventType.POLICYHOLDER_INVITED: _policyholder,
    EventType.POLICYHOLDER_JOINED: _policyholder,
    EventType.VIDEO_COLLABORATION_INVITE_SENT: _video,
    EventType.VIDEO_COLLABORATION_COMPLETED: _video,
    EventType.PROJECT_AUTO_XA_LINKING_UNSUCCESSFUL: _xa_linking,
    EventType.PERSONAL_PROPERTY_TASK_SHARED: _personal_property,
    EventType.PROJECT_CONVERSATION_UPDATED: _conversation,
}


# --- helpers ---------------------------------------------------------------------------------------


def _verify(
    event: ClaimXEvent,
    api: ApiPort,
    now: datetime,
    cache: ProjectCache | None,
    *,
    project_id: str | None = None,
    refresh: bool = False,
) -> tuple[list[Row], list[Row], int]:
    """``(projects, contacts, api_calls)`` for the event's project, through the cache unless ``refresh``."""
    pid = project_id or event.project_id
    body = None if refresh or cache is None else cache.get(pid)
    calls = 0
    if body is None:
        body = api.get_project(pid)
        calls = 1
        if cache is not None and unwrap_project(body)[0].get("projectId") is not None:
            cache.put(pid, body)
    projects, contacts = project_rows(body, event_id=event.event_id, fallback_project_id=pid, now=now)
    return projects, contacts, calls


def _media_group(
    project_id: str, group: list[ClaimXEvent], api: ApiPort, now: datetime, cache: ProjectCache | None
) -> dict[str, HandlerResult | PipelineError]:
    wanted = list(dict.fromkeys(_canonical_media_id(e.media_id) for e in group))
    try:
        items = api.get_project_media(project_id, wanted if len(wanted) <= BATCH_THRESHOLD else None)
    except PipelineError as exc:
        return {e.event_id: exc for e in group}
    index = {media_id_of(item): item for item in items}
    outcomes: dict[str, HandlerResult | PipelineError] = {}
    first: ClaimXEvent | None = None
    for event in group:
        item = index.get(_canonical_media_id(event.media_id))
        if item is None:
            outcomes[event.event_id] = PermanentError(f"Media {event.media_id} not found in API response")
            continue
        row = media_row(item, project_id=project_id, event_id=event.event_id, now=now)
        outcomes[event.event_id] = HandlerResult(EntityRows(media=[row]), api_calls=0)
        first = first or event
    if first is None:
        return outcomes
    try:
        projects, contacts, calls = _verify(first, api, now, cache)
    except PipelineError as exc:
        return {e.event_id: exc for e in group}
    lead = outcomes[first.event_id]
    assert isinstance(lead, HandlerResult)
    lead.rows.projects, lead.rows.contacts, lead.api_calls = projects, contacts, 1 + calls
    return outcomes


def _canonical_media_id(value: Any) -> str:
    as_int = integer(value)
    return str(as_int) if as_int is not None else str(value).strip()


def _some(row: Row | None) -> list[Row]:
    return [row] if row is not None else []
