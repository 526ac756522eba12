"""Retries and circuit-open re-queues wait in the durable schedule (``core.schedule``), not in the
broker: no worker ever holds an ETA message, so the visibility timeout only has to outlast one
task run.

* :func:`schedule_from_request` (called by ``tasks.base`` where it decides): the message that
  continues the task, exactly what Celery's ``Task.retry`` would publish (same task id, args,
  chain, root and parent ids, ``retries`` + 1 for a retry), goes to the schedule with its due time.
  The caller then raises :class:`celery.exceptions.Retry` (the worker acknowledges the message,
  sends ``task-retried`` for Flower and the ``task_retry`` signal) or ``Ignore`` (a re-queue).
* :func:`release_due`: publishes due entries. Every worker runs it about once a second from its
  keeper thread (``tasks.tracking``), so release depends on no single process and not on Beat.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery, Task, signature
from kombu.utils.json import dumps, loads

from core.schedule import RetrySchedule

log = logging.getLogger("pipeline.schedule")

#: Ids of tasks this process scheduled during their current run (read by ``tasks.tracking`` at
#: ``task_postrun``: a scheduled task is still in flight, not finished).
_scheduled_now: set[str] = set()

#: Options of the request that must not travel with the released message: the schedule is its
#: delay, and a broker-level ETA is exactly what this module removes.
_DROPPED_OPTIONS = ("countdown", "eta")


def scheduled_in_this_run(task_id: str | None) -> bool:
    """True (once) when ``task_id`` was scheduled by its current run in this process."""
    if task_id and task_id in _scheduled_now:
        _scheduled_now.discard(task_id)
        return True
    return False


def schedule_from_request(task: Task, client: Any, *, delay: float, count_retry: bool) -> None:
    """Write the continuation of ``task``'s current run to the schedule, due in ``delay`` seconds.

    ``count_retry``: the message carries ``retries + 1`` (a retry); otherwise the current count (a
    circuit-open re-queue does not use up a retry). Raises when Redis refuses: the caller then
    keeps the message (``Reject``), as before.
    """
    request = task.request
    retries = request.retries + 1 if count_retry else request.retries
    sig = task.signature_from_request(request, retries=retries)
    for name in _DROPPED_OPTIONS:
        sig.options.pop(name, None)
    task_id = request.id or sig.options.get("task_id")
    if not task_id:
        raise ValueError(f"{task.name}: a task without an id cannot be scheduled")
    RetrySchedule(client).add(task_id, dumps(dict(sig)), due=time.time() + max(0.0, delay))
    _scheduled_now.add(task_id)


def release_due(app: Celery, client: Any, *, now: float | None = None, limit: int = 100) -> int:
    """Publish up to ``limit`` due entries; returns how many were published.

    Each entry is claimed by exactly one caller (``RetrySchedule.claim_due``). An entry whose
    publish fails is put back, due at once, so the next release tries again.
    """
    schedule = RetrySchedule(client)
    claimed = schedule.claim_due(time.time() if now is None else now, limit)
    if not claimed:
        return 0
    released = 0
    with app.producer_or_acquire() as producer:
        for raw in claimed:
            entry = loads(raw)
            sig = signature(entry, app=app)
            try:
                sig.apply_async(producer=producer)
                released += 1
            except Exception as exc:  # noqa: BLE001 - the entry must not be lost with the broker down
                log.warning("could not release %s (%s); it stays scheduled", sig.id, type(exc).__name__)
                schedule.add(str(sig.id), raw, due=time.time())
    return released
