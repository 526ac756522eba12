"""``claimx.enrich``: call the ClaimX API through the handlers, stage entity rows, fan out media.

Input: the events of one enrich unit (one event, or the media events of one project batched by
the dispatcher). Each event is handled on its own terms: an event whose handler fails for good
becomes its own dead letter (category ``permanent``); its ``claimx_events`` row was already
written by the dispatcher's canvas.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.exceptions import Ignore

from core.errors import PipelineError
from core.observability import Metric, dead_letters_by
from core.security.redact import sanitize_url
from domains.attachments import AttachmentJob
from domains.claimx.handlers import EntityRows, HandlerResult, handle, handle_media_batch
from domains.claimx.media import download_plans
from domains.claimx.models import ClaimXEvent
from domains.names import Domain, Stage, Table, task_name
from tasks.application import app
from tasks.base import StageTask, utcnow
from tasks.canvas import attachment_chain, track_attachments, write_rows
from tasks.runtime import Runtime

log = logging.getLogger("pipeline.tasks.enrich")
MEDIA_EVENT = "PROJECT_FILE_ADDED"


def claimx_client(rt: Runtime):  # noqa: ANN201
    """The process's ClaimX client (one pooled session per worker process)."""
    return rt.claimx_api


def project_cache(rt: Runtime):  # noqa: ANN201
    from domains.claimx.project_cache import ProjectCache

    return ProjectCache(
        rt.redis, ttl_seconds=rt.settings.project_cache_ttl_seconds, enabled=rt.settings.project_cache_enabled
    )


def run_handlers(rt: Runtime, events: list[ClaimXEvent]) -> dict[str, HandlerResult | PipelineError]:
    api, cache, now = claimx_client(rt), project_cache(rt), utcnow()
    media = [e for e in events if e.event_type == MEDIA_EVENT]
    results: dict[str, HandlerResult | PipelineError] = {}
    if media:
        results.update(handle_media_batch(media, api, now=now, cache=cache))
    for event in events:
        if event.event_type == MEDIA_EVENT:
            continue
        try:
            results[event.event_id] = handle(event, api, now=now, cache=cache)
        except PipelineError as err:
            results[event.event_id] = err
    return results


def fan_out(rt: Runtime, rows: EntityRows) -> int:
    """Stage entity rows and start one download chain per media row with a link."""
    for table, table_rows in rows.by_table().items():
        if table_rows:
            write_rows(app, Domain.CLAIMX, Table(table), table_rows, rt.stash).apply_async()
    chains = 0
    for plan in download_plans(rows.media):
        job = AttachmentJob(
            domain=Domain.CLAIMX,
            media_id=plan.media_id,
            event_id=plan.event_id,
            url_display=sanitize_url(plan.url),
            blob_path=plan.blob_path,
            file_name=plan.file_name,
            file_type=plan.file_type,
            check_expiry=False,
            context={"project_id": plan.project_id},
        )
        rt.vault.put(job.vault_key(), plan.url)
        track_attachments(rt.pending, [job])
        attachment_chain(app, job).apply_async()
        chains += 1
    return chains


@app.task(
    base=StageTask,
    bind=True,
    name=task_name(Domain.CLAIMX, Stage.ENRICH),
    domain=Domain.CLAIMX.value,
    stage=Stage.ENRICH.value,
)
def claimx_enrich(self: StageTask, events: list[dict[str, Any]]) -> int:
    rt = self.runtime
    parsed = [ClaimXEvent.model_validate(e) for e in events]
    try:
        results = run_handlers(rt, parsed)
    except Exception as exc:  # noqa: BLE001 - classified and routed by handle_failure
        self.handle_failure(exc, {"args": [events]}, key=parsed[0].event_id if parsed else "")
    failures = {eid: r for eid, r in results.items() if isinstance(r, PipelineError)}
    retryable = [e for e in failures.values() if e.category.retryable or e.category.value == "circuit_open"]
    if retryable:
        # Retry the whole unit (handlers are idempotent); permanent ones are dead-lettered at the end.
        self.handle_failure(retryable[0], {"args": [events]}, key=parsed[0].event_id)
    chains = 0
    for event in parsed:
        result = results.get(event.event_id)
        if isinstance(result, HandlerResult):
            if result.skipped:
                rt.counters.incr(Domain.CLAIMX, Metric.ENRICH_SKIPPED_UNKNOWN_TYPE)
                continue
            chains += fan_out(rt, result.rows)
            rt.counters.incr_many(Domain.CLAIMX, {Metric.ENRICHED: 1, Metric.API_CALLS: result.api_calls})
    for event in parsed:
        err = failures.get(event.event_id)
        if err is not None:
            rt.dead_letters.add(
                domain=Domain.CLAIMX.value,
                stage=Stage.ENRICH.value,
                task_name=self.name,
                payload={"args": [[event.model_dump(mode="json")]]},
                category=err.category,
                error=err.message,
                attempts=self.request.retries + 1,
                key=event.event_id,
            )
            rt.counters.incr_many(Domain.CLAIMX, {Metric.DEAD_LETTERS: 1, dead_letters_by("permanent"): 1})
    if not results and parsed:
        raise Ignore()
    return chains
