"""The base class of every stage task: errors say what happens next (STYLE §5).

A stage task body calls a plain function. When it raises, :meth:`StageTask.handle_failure`
decides by the error's category:

* ``permanent``: dead letter now (and the domain's failure hook records the outcome);
* ``transient`` / ``auth`` / ``unknown``: Celery retry with the configured countdowns + jitter;
  once they are used up, dead letter (``exhausted``);
* ``circuit_open``: re-queued after the breaker's remaining open time *without* counting a retry.

A dead-lettered or re-queued task ends with :class:`celery.exceptions.Ignore`, so the message is
acknowledged and the chain stops there; the dead letter is the durable record.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from celery import Task
from celery.exceptions import Ignore, Retry, SoftTimeLimitExceeded

from core.errors import ErrorCategory, PipelineError, TransientError
from core.observability import LOG_KEYS, Metric, dead_letters_by, requeued_circuit_open, retried
from core.security.redact import sanitize_error
from domains.names import DOMAIN_STAGES, Domain, Stage, task_name
from tasks.runtime import Runtime, get_runtime

log = logging.getLogger("pipeline.tasks")

#: Called with (runtime, payload, error, category) when a work item fails for good.
FailureHook = Callable[[Runtime, dict[str, Any], PipelineError], None]


def as_pipeline_error(exc: BaseException) -> PipelineError:
    if isinstance(exc, PipelineError):
        return exc
    if isinstance(exc, SoftTimeLimitExceeded):
        return TransientError("Task time limit exceeded")
    return PipelineError(sanitize_error(f"{type(exc).__name__}: {exc}"), category=ErrorCategory.UNKNOWN)


def retry_countdown(delays: list[int], attempt: int, *, jitter: bool) -> float:
    """Countdown for retry number ``attempt`` (0-based): the configured delay, with up to +/-10 %
    jitter so a burst of failures does not come back as a burst."""
    base = float(delays[min(attempt, len(delays) - 1)])
    return base * random.uniform(0.9, 1.1) if jitter else base


class StageTask(Task):
    """Shared behaviour of stage tasks. Subclass attributes: ``domain``, ``stage``."""

    abstract = True
    typing = True
    domain: str = ""
    stage: str = ""

    @property
    def runtime(self) -> Runtime:
        return get_runtime()

    def handle_failure(
        self, exc: BaseException, payload: dict[str, Any], *, key: str, on_dead: FailureHook | None = None
    ) -> None:
        """Retry, re-queue or dead-letter; always raises (Retry or Ignore)."""
        if isinstance(exc, (Retry, Ignore)):
            raise exc
        err = as_pipeline_error(exc)
        rt = self.runtime
        attempts = self.request.retries + 1
        category = err.category
        context = {
            "domain": self.domain,
            "stage": self.stage,
            "key": key,
            "attempt": attempts,
            "category": category.value,
        }
        log.warning(
            "stage failed %s error=%s",
            " ".join(f"{k}={context[k]}" for k in LOG_KEYS if k in context),
            sanitize_error(err.message),
            extra=context,
        )
        if category is ErrorCategory.CIRCUIT_OPEN:
            countdown = max(1.0, float(err.retry_after_seconds or 5))
            self.signature_from_request(countdown=countdown).apply_async()
            rt.counters.incr(self.domain, requeued_circuit_open(self.stage))
            raise Ignore()
        delays = [int(d) for d in rt.settings.retry_delays_seconds]
        if category.retryable and self.request.retries < len(delays):
            countdown = retry_countdown(delays, self.request.retries, jitter=rt.settings.retry_jitter)
            if err.retry_after_seconds:
                countdown = max(countdown, float(err.retry_after_seconds))
            rt.counters.incr(self.domain, retried(self.stage))
            raise self.retry(exc=err, countdown=countdown, max_retries=len(delays))
        reason = "permanent" if category is ErrorCategory.PERMANENT else "exhausted"
        rt.dead_letters.add(
            domain=self.domain,
            stage=self.stage,
            task_name=self.name,
            payload=payload,
            category=category,
            error=err.message,
            attempts=attempts,
            key=key,
        )
        rt.counters.incr_many(self.domain, {Metric.DEAD_LETTERS: 1, dead_letters_by(reason): 1})
        if on_dead is not None:
            on_dead(rt, payload, err)
        raise Ignore()


def register_attachment_stage(
    app,
    stage: Stage,  # noqa: ANN001 - the Celery app
    run: Callable[[StageTask, Domain, dict[str, Any]], dict[str, Any]],
) -> None:
    """Register ``{domain}.{stage}`` for every domain that has the stage, all running ``run``."""
    for domain, stages in DOMAIN_STAGES.items():
        if stage not in stages:
            continue

        def _task(self: StageTask, payload: dict[str, Any], _domain: Domain = domain) -> dict[str, Any]:
            return run(self, _domain, payload)

        _task.__name__ = f"{domain.value}_{stage.value}"
        _task.__doc__ = f"{domain.value} {stage.value} of one attachment job (see {run.__module__})."
        app.task(
            base=StageTask, bind=True, name=task_name(domain, stage), domain=domain.value, stage=stage.value
        )(_task)


def utcnow() -> datetime:
    return datetime.now(UTC)
