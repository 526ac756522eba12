"""The base class of every stage task: retry behaviour is declared on the task (STYLE §5).

A stage task's body is a plain function; it never catches its own failures. :class:`StageTask`
runs the body and, when it raises, :meth:`StageTask.handle_failure` decides by the error's
category:

* ``permanent``: dead letter now (and the task's ``on_dead`` hook records the outcome);
* ``transient`` / ``auth`` / ``unknown``: retry with the configured countdowns + jitter, through
  the durable schedule (``tasks.schedule``: the retry waits in Redis, not as an ETA message in the
  broker; ``Retry`` is raised so Celery acknowledges the message and Flower shows the retry);
  once they are used up, dead letter (``exhausted``). A server's ``Retry-After`` longer than the
  longest configured delay is not honoured: the work is dead-lettered with that reason
  (``retry_after_too_long``), so no work waits longer than the configuration says;
* ``circuit_open``: re-queued through the same schedule after the breaker's remaining open time
  (at most the longest configured delay) *without* counting a retry.

What a dead letter of the task holds is declared on its class: :meth:`StageTask.letter` (payload
and key from the task's arguments) and ``on_dead``. So every task ends in exactly one of: done,
retried, re-queued, dead-lettered. A dead-lettered or re-queued task ends with
:class:`celery.exceptions.Ignore` (the message is acknowledged; the dead letter is the durable
record). When even that outcome cannot be recorded (Redis or the broker down), the task raises
:class:`celery.exceptions.Reject` with ``requeue=True``: the message is not acknowledged, and
Celery's late acks bring it back.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from celery import Task
from celery.exceptions import Ignore, Reject, Retry, SoftTimeLimitExceeded

from core.errors import ErrorCategory, PipelineError, TransientError
from core.observability import LOG_KEYS, Metric, dead_letters_by, requeued_circuit_open, retried
from core.security.redact import sanitize_error
from tasks.canvas import replay_holds
from tasks.monitoring import Outcome, note_outcome
from tasks.runtime import Runtime, get_runtime
from tasks.schedule import schedule_from_request

log = logging.getLogger("pipeline.tasks")

#: Called with (runtime, payload, error) when a work item fails for good.
FailureHook = Callable[[Runtime, dict[str, Any], PipelineError], None]

#: Dead-letter reason of a retry whose server-requested wait exceeds the configuration.
RETRY_AFTER_TOO_LONG = "retry_after_too_long"


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
    """Shared behaviour of stage tasks. Class attributes: ``domain``, ``stage``, ``on_dead``;
    override :meth:`letter` to say what a dead letter of the task holds."""

    abstract = True
    typing = True
    domain: str = ""
    stage: str = ""
    #: The run's start record rides on the stage's first Redis round trip (``tasks.tracking``
    #: ``start_into``) instead of one of its own; only for stages that touch Redis before any
    #: long work, so the record exists while the work runs.
    fold_start: bool = False
    on_dead: ClassVar[FailureHook | None] = None

    @property
    def runtime(self) -> Runtime:
        return get_runtime()

    def letter(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """(dead-letter payload, work-item key) for a call with these arguments. Default: the
        arguments as they are, keyed by the task id."""
        return {"args": list(args), **({"kwargs": kwargs} if kwargs else {})}, self.request.id or ""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except (Retry, Ignore, Reject):
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is classified and routed here
            try:
                payload, key = self.letter(args, kwargs)
            except Exception:  # noqa: BLE001 - malformed arguments still get a letter
                payload, key = {"args": list(args)}, self.request.id or ""
            self.handle_failure(exc, payload, key=key, on_dead=type(self).on_dead)

    def handle_failure(
        self, exc: BaseException, payload: dict[str, Any], *, key: str, on_dead: FailureHook | None = None
    ) -> None:
        """Retry, re-queue or dead-letter; always raises (Retry, Ignore, or Reject when the outcome
        itself cannot be recorded)."""
        if isinstance(exc, (Retry, Ignore, Reject)):
            raise exc
        try:
            self._decide(as_pipeline_error(exc), payload, key, on_dead)
        except (Retry, Ignore):
            raise
        except Exception as failure:  # no outcome recorded: keep the message
            log.error(
                "could not record the outcome of %s key=%s (%s); the message is not acknowledged",
                self.name,
                key,
                sanitize_error(f"{type(failure).__name__}: {failure}"),
            )
            raise Reject(sanitize_error(str(failure)), requeue=True) from failure

    def _decide(
        self, err: PipelineError, payload: dict[str, Any], key: str, on_dead: FailureHook | None
    ) -> None:
        rt = self.runtime
        category = err.category
        context = {
            "domain": self.domain,
            "stage": self.stage,
            "key": key,
            "attempt": self.request.retries + 1,
            "category": category.value,
        }
        log.warning(
            "stage failed %s error=%s",
            " ".join(f"{k}={context[k]}" for k in LOG_KEYS if k in context),
            sanitize_error(err.message),
            extra=context,
        )
        delays = [int(d) for d in rt.settings.retry_delays_seconds]
        longest = float(max(delays, default=0))
        if category is ErrorCategory.CIRCUIT_OPEN:
            # The breaker's own wait: bounded by the configuration like any other delay.
            countdown = min(max(1.0, float(err.retry_after_seconds or 5)), max(longest, 1.0))
            # Into the durable schedule (tasks.schedule), not the broker: no ETA message.
            schedule_from_request(self, rt.redis, delay=countdown, count_retry=False)
            rt.counters.incr(self.domain, requeued_circuit_open(self.stage))
            note_outcome(self, Outcome.REQUEUED)
            raise Ignore()
        if category.retryable and self.request.retries < len(delays):
            wait = err.retry_after_seconds
            if wait is not None and wait > longest:
                message = (
                    f"{err.message} (server asked to retry after {wait:.0f} s, more than the "
                    f"{longest:.0f} s RETRY_DELAYS_SECONDS allows)"
                )
                self.dead_letter(payload, key, err, reason=RETRY_AFTER_TOO_LONG, message=message)
                if on_dead is not None:
                    on_dead(rt, payload, err)
                raise Ignore()
            countdown = retry_countdown(delays, self.request.retries, jitter=rt.settings.retry_jitter)
            if wait:
                countdown = max(countdown, wait)
            # The retry waits in the durable schedule, not as an ETA message in the broker
            # (tasks.schedule); raising Retry acknowledges this message and tells Flower.
            schedule_from_request(self, rt.redis, delay=countdown, count_retry=True)
            rt.counters.incr(self.domain, retried(self.stage))
            raise Retry(exc=err, when=countdown)
        self.dead_letter(
            payload, key, err, reason="permanent" if category is ErrorCategory.PERMANENT else "exhausted"
        )
        if on_dead is not None:
            on_dead(rt, payload, err)
        raise Ignore()

    def dead_letter(
        self,
        payload: dict[str, Any],
        key: str,
        err: PipelineError,
        *,
        reason: str,
        message: str | None = None,
    ) -> None:
        """Write (or update) the work item's dead letter and count it."""
        rt = self.runtime
        rt.dead_letters.add(  # one letter per (domain, stage, key): a redelivery updates it
            domain=self.domain,
            stage=self.stage,
            task_name=self.name,
            payload=payload,
            category=err.category,
            error=message or err.message,
            attempts=self.request.retries + 1,
            key=key,
            holds=replay_holds(self.stage, self.name, payload),
        )
        rt.counters.incr_many(self.domain, {Metric.DEAD_LETTERS: 1, dead_letters_by(reason): 1})
        note_outcome(self, Outcome.DEAD_LETTERED, err.message if reason == "permanent" else None)


def utcnow() -> datetime:
    return datetime.now(UTC)
