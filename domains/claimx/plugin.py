"""The claimx domain as the pipeline sees it: one declaration (see ``domains.canvas.DomainSpec``).

Stages: ``enrich`` (the ClaimX API, through the handlers) -> entity rows + one
``download -> upload -> write`` chain per media row with a link; ``write`` of the event rows.
Tables: ``claimx_events``, the entity tables, ``claimx_attachments`` (inventory). An expired or
refused presigned link is re-issued by the API (``refresh_url``). Kafka records are keyed by
project id; the poller has no tie-break column (SPEC §2.2 C).

:func:`enrich` handles one unit: every event is validated on its own (a malformed one is its own
permanent failure), handlers run, and a retryable failure of any event retries the whole unit
(handlers are idempotent); permanent ones are returned per event for their own dead letters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from pydantic import ValidationError

from core.errors import ErrorCategory, PermanentError, PipelineError
from core.observability import Metric
from core.security.redact import sanitize_error, sanitize_url
from core.settings import Settings
from domains.attachments import AttachmentJob
from domains.canvas import DomainSpec, EnrichOutcome, EventPlan, ParsedEvent, PlanBatch
from domains.claimx import canvas, tables
from domains.claimx.api import ApiConfig, ClaimXClient
from domains.claimx.breaker import CircuitBreaker
from domains.claimx.handlers import HandlerResult, handle, handle_media_batch
from domains.claimx.media import download_plans, refresh_media_url
from domains.claimx.models import ClaimXEvent
from domains.claimx.ports import ApiPort
from domains.claimx.project_cache import ProjectCache
from domains.claimx.ratelimit import RateLimiter
from domains.names import Domain, Table


@dataclass(frozen=True)
class Resources:
    """What one worker process keeps for claimx: the API client (pooled) and the project cache."""

    api: ApiPort
    cache: ProjectCache | None


def resources(settings: Settings, client: redis.Redis) -> Resources:
    api = ClaimXClient(
        ApiConfig.from_settings(settings),
        redis=client,
        breaker=CircuitBreaker(client, name="claimx_api"),
        limiter=RateLimiter(client, rate_per_second=settings.claimx_api_rate_per_second),
    )
    cache = ProjectCache(
        client, ttl_seconds=settings.project_cache_ttl_seconds, enabled=settings.project_cache_enabled
    )
    return Resources(api=api, cache=cache)


def planner(_settings: Settings) -> PlanBatch:
    def plan_batch(events: Sequence[ParsedEvent], now: datetime) -> list[EventPlan]:
        return canvas.plan_batch(events, now)

    return plan_batch


def run_handlers(
    res: Resources, events: list[ClaimXEvent], now: datetime
) -> dict[str, HandlerResult | PipelineError]:
    """The outcome per event id: media events of the unit in one batch, the others one by one."""
    media = [e for e in events if e.event_type == canvas.MEDIA_EVENT]
    results: dict[str, HandlerResult | PipelineError] = {}
    if media:
        results.update(handle_media_batch(media, res.api, now=now, cache=res.cache))
    for event in events:
        if event.event_type == canvas.MEDIA_EVENT:
            continue
        try:
            results[event.event_id] = handle(event, res.api, now=now, cache=res.cache)
        except PipelineError as err:
            results[event.event_id] = err
    return results


def _media_jobs(rows: list[dict[str, Any]]) -> list[tuple[AttachmentJob, str]]:
    """One attachment job (and its real URL, for the vault) per media row with a link."""
    return [
        (
            AttachmentJob(
                domain=Domain.CLAIMX,
                media_id=plan.media_id,
                event_id=plan.event_id,
                url_display=sanitize_url(plan.url),
                blob_path=plan.blob_path,
                file_name=plan.file_name,
                file_type=plan.file_type,
                check_expiry=False,
                context={"project_id": plan.project_id},
            ),
            plan.url,
        )
        for plan in download_plans(rows)
    ]


def _key_of(payload: object) -> str:
    value = payload.get("event_id") if isinstance(payload, dict) else None
    return str(value) if value else "invalid-event"


def enrich(res: Resources, payloads: list[dict[str, Any]], now: datetime) -> EnrichOutcome:
    """One enrich unit (see the module contract)."""
    outcome = EnrichOutcome()
    events: list[ClaimXEvent] = []
    for payload in payloads:
        try:
            events.append(ClaimXEvent.model_validate(payload))
        except ValidationError as exc:
            reason = sanitize_error(f"Invalid enrich event: {exc.errors()[0].get('msg', 'invalid')}")
            outcome.failed.append((payload, _key_of(payload), PermanentError(reason)))
    results = run_handlers(res, events, now)
    failures = {eid: r for eid, r in results.items() if isinstance(r, PipelineError)}
    retryable = [
        e for e in failures.values() if e.category.retryable or e.category is ErrorCategory.CIRCUIT_OPEN
    ]
    if retryable:
        outcome.retry = retryable[0]
        return outcome
    enriched = api_calls = skipped = 0
    for event in events:
        result = results.get(event.event_id)
        if isinstance(result, HandlerResult):
            if result.skipped:
                skipped += 1
                continue
            rows = {Table(t): r for t, r in result.rows.by_table().items() if r}
            plan = EventPlan(
                Domain.CLAIMX, event.event_id, rows=rows, attachments=_media_jobs(result.rows.media)
            )
            outcome.plans.append(plan)
            enriched += 1
            api_calls += result.api_calls
        elif isinstance(result, PipelineError):
            outcome.failed.append((event.model_dump(mode="json"), event.event_id, result))
    outcome.counters = {
        Metric.ENRICHED: enriched,
        Metric.API_CALLS: api_calls,
        Metric.ENRICH_SKIPPED_UNKNOWN_TYPE: skipped,
    }
    return outcome


def inventory_row(job: AttachmentJob, _url: str | None, now: datetime) -> tuple[Table, dict[str, Any]]:
    """The ``claimx_attachments`` row (the URL is not kept: presigned links expire)."""
    return Table.CLAIMX_ATTACHMENTS, {
        "media_id": job.media_id,
        "project_id": job.context.get("project_id"),
        "event_id": job.event_id,
        "file_name": job.file_name,
        "file_type": job.file_type,
        "blob_path": job.blob_path,
        "bytes_downloaded": job.bytes_downloaded or 0,
        "content_type": job.content_type,
        "downloaded_at": (job.downloaded_at or now).isoformat(),
        "created_at": now.isoformat(),
        "updated_at": now.isoformat(),
    }


def refreshable(_job: AttachmentJob, err: PipelineError) -> bool:
    """Presigned links that expired or were refused can be re-issued by the API."""
    text = err.message.lower()
    return err.http_status == 403 or "expired" in text or "forbidden" in text or "access denied" in text


def refresh_url(res: Resources, job: AttachmentJob) -> str:
    return refresh_media_url(res.api, job.context.get("project_id") or "", job.media_id)


def spec() -> DomainSpec:
    return DomainSpec(
        domain=Domain.CLAIMX,
        parse=canvas.parse,
        planner=planner,
        event_table=Table.CLAIMX_EVENTS,
        tables=tables.TABLES,
        inventory_row=inventory_row,
        enrich=enrich,
        context=resources,
        refreshable=refreshable,
        refresh_url=refresh_url,
        record_key_fields=("projectId", "project_id"),
        poll_tiebreak_column=None,
        poll_default_table="ClaimXEvents",
    )
