"""``{domain}.enrich``: a domain's own follow-up work on a unit of events (claimx: the ClaimX API).

Input: the events of one enrich unit (one event, or, for claimx, the media events of one project
batched by the dispatcher). The domain's ``enrich`` hook does the work and returns an
:class:`~domains.canvas.EnrichOutcome`; this task, the same for every domain:

* retries the whole unit when the outcome asks for it (enrichers are idempotent);
* enqueues the outcome's plans exactly as the dispatcher does (rows by reference, URLs to the
  vault, attachment chains tracked and sent), in a few round trips for the whole unit;
* dead-letters each event that failed for good on its own (category ``permanent``).

Everything, validation and fan-out included, runs inside :class:`~tasks.base.StageTask`'s failure
handling: an exception anywhere retries or dead-letters the unit, keyed by its event ids, and if
not even that can be recorded the message is not acknowledged.
"""

from __future__ import annotations

from typing import Any

from core.errors import PermanentError
from domains import registry
from domains.names import Domain, Stage
from tasks.application import app, register_stage_task
from tasks.base import StageTask, utcnow
from tasks.canvas import enqueue_plans


def unit_key(events: list[Any]) -> str:
    """The dead-letter key of a whole enrich unit: its event ids, so a unit's letter never merges
    with a letter of another unit or of one of its events (each would lose the other's events)."""
    return ",".join(str(e.get("event_id", "")) if isinstance(e, dict) else "?" for e in events)


class EnrichTask(StageTask):
    abstract = True

    def letter(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[dict[str, Any], str]:
        events = args[0] if args else kwargs.get("events", [])
        return {"args": [events]}, unit_key(events if isinstance(events, list) else [events])


def run_unit(task: StageTask, domain: Domain, events: list[dict[str, Any]]) -> int:
    """One enrich unit (see the module contract); returns the number of attachment chains sent."""
    spec = registry.spec_of(domain)
    if spec.enrich is None:  # registered only for domains with an enrich stage
        raise PermanentError(f"domain {domain} has no enrich stage")
    rt = task.runtime
    outcome = spec.enrich(rt.context(domain), events, utcnow())
    if outcome.retry is not None:
        raise outcome.retry
    enqueue_plans(app, outcome.plans, rt.vault, rt.stash, rt.pending)
    for payload, key, err in outcome.failed:
        task.dead_letter({"args": [[payload]]}, key, err, reason="permanent")
    rt.counters.incr_many(domain, outcome.counters)
    return sum(len(plan.attachments) for plan in outcome.plans)


def _register(domain: Domain) -> None:
    def _task(self: StageTask, events: list[dict[str, Any]]) -> int:
        return run_unit(self, domain, events)

    register_stage_task(
        _task,
        base=EnrichTask,
        domain=domain,
        stage=Stage.ENRICH,
        doc=f"{domain.value} enrich of one unit of events (see {__name__}).",
    )


for _domain, _spec in registry.specs().items():
    if _spec.enrich is not None:
        _register(_domain)
