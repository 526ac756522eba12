"""Who holds which work, and the keeper thread every worker runs (docs/reliability.md).

Per task run (``task_prerun`` / ``task_postrun``, in the pool child that runs it):

* ``keys.RUNNING``: task id -> ``{"worker": node name, "pid", "at": start, "task": name}`` while it runs;
  a task that is acknowledged on receipt (``acks_late=False``: ``pipeline.flush``, …) also records
  what re-sends it (``redo``), since no unacknowledged copy survives its worker.
* the in-flight registries (``core.state``): an attachment chain (``download``, ``upload``,
  ``write.inventory``) records the id of its current message and, on a link's success, the id of
  the next link; a single task (``enrich``, ``write.rows``) is registered (if its publisher did not
  do it) and ends its entry when it ends (done or dead-lettered), but not when it was scheduled
  for a retry or re-queue (``tasks.schedule``) or rejected back to its queue.

Tracking never fails a task: a Redis error here is logged and the run goes on (the reaper then
re-drives at worst work that was not lost, which is harmless: every stage is idempotent).

The **keeper** (:class:`Keeper`, one daemon thread in each worker's main process, started at
``worker_ready``): every ``WORKER_HEARTBEAT_SECONDS`` it refreshes the worker's heartbeat key (TTL
three times that) and its entry in ``keys.WORKERS`` (the queues it consumes); every
``RETRY_RELEASE_INTERVAL_SECONDS`` it releases due retries (``tasks.schedule.release_due``); every
``REAPER_INTERVAL_SECONDS`` it runs the reaper (``tasks.reaper``) unless another worker's reaper
holds the lock. So neither release nor reaping depends on one process or on Beat.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from typing import Any

from celery import Task, states
from celery.signals import task_postrun, task_prerun, worker_ready, worker_shutdown

from core import keys
from core.redis_client import redis_client
from core.settings import Settings, get_settings
from tasks.runtime import get_runtime
from tasks.schedule import release_due, scheduled_in_this_run

log = logging.getLogger("pipeline.tracking")

CHAIN, SINGLE = "chain", "task"
_CHAIN_STAGES = ("download", "upload")


def work_of(task: Task, task_id: str, args: Any, kwargs: Any) -> tuple[str, str] | None:
    """(kind, member) of the work a task run carries: ``("chain", "{domain}:{media_id}")`` for an
    attachment stage, ``("task", task_id)`` for ``enrich`` / ``write.rows``, None otherwise."""
    stage = getattr(task, "stage", "")
    if stage in _CHAIN_STAGES or task.name.endswith(".write.inventory"):
        payload = args[0] if args else (kwargs or {}).get("payload")
        if isinstance(payload, dict) and payload.get("domain") and payload.get("media_id"):
            return CHAIN, f"{payload['domain']}:{payload['media_id']}"
        return None
    if stage == "enrich" or task.name.endswith(".write.rows"):
        return SINGLE, task_id
    return None


def redo_of(task: Task, task_id: str, args: Any, kwargs: Any) -> dict[str, Any]:
    """The signature that re-sends this run (same id, same retry count)."""
    return {
        "task": task.name,
        "args": list(args or ()),
        "kwargs": dict(kwargs or {}),
        "options": {"task_id": task_id, "retries": task.request.retries or 0},
    }


@task_prerun.connect
def _task_started(
    task_id: str | None = None, task: Task | None = None, args: Any = None, kwargs: Any = None, **_: Any
) -> None:
    if not task_id or task is None:
        return
    try:
        record_start(task, task_id, args, kwargs)
    except Exception as exc:  # noqa: BLE001 - tracking never fails a task
        log.warning("could not record the start of %s %s: %s", task.name, task_id, type(exc).__name__)


@task_postrun.connect
def _task_ended(
    task_id: str | None = None,
    task: Task | None = None,
    args: Any = None,
    kwargs: Any = None,
    state: str | None = None,
    **_: Any,
) -> None:
    if not task_id or task is None:
        return
    scheduled = scheduled_in_this_run(task_id)
    try:
        record_end(task, task_id, args, kwargs, state, scheduled=scheduled)
    except Exception as exc:  # noqa: BLE001 - tracking never fails a task
        log.warning("could not record the end of %s %s: %s", task.name, task_id, type(exc).__name__)


def record_start(task: Task, task_id: str, args: Any, kwargs: Any) -> None:
    rt = get_runtime()
    now = time.time()
    record: dict[str, Any] = {
        "worker": task.request.hostname or rt.hostname,
        "pid": os.getpid(),
        "at": now,
        "task": task.name,
    }
    if not getattr(task, "acks_late", True):
        record["redo"] = redo_of(task, task_id, args, kwargs)
    pipe = rt.redis.pipeline(transaction=False)
    pipe.hset(keys.RUNNING, task_id, json.dumps(record, default=str))
    work = work_of(task, task_id, args, kwargs)
    if work is not None:
        kind, member = work
        if kind == CHAIN and getattr(task, "stage", "") == "download":
            # A chain nobody registered (a replay) is tracked from its first link on.
            pipe.set(keys.pending(member), json.dumps(args[0] if args else kwargs["payload"]), nx=True)
            pipe.zadd(keys.PENDING_INDEX, {member: now})
            pipe.hset(keys.PENDING_TASK, member, task_id)
        elif kind == CHAIN:
            pipe.zadd(keys.PENDING_INDEX, {member: now}, xx=True)
        else:
            pipe.set(keys.inflight(member), json.dumps(redo_of(task, task_id, args, kwargs)), nx=True)
            pipe.zadd(keys.INFLIGHT_INDEX, {member: now})
        pipe.hdel(keys.SUSPECTS, member)
    pipe.execute()


def record_end(
    task: Task, task_id: str, args: Any, kwargs: Any, state: str | None, *, scheduled: bool
) -> None:
    rt = get_runtime()
    now = time.time()
    pipe = rt.redis.pipeline(transaction=False)
    pipe.hdel(keys.RUNNING, task_id)
    work = work_of(task, task_id, args, kwargs)
    goes_on = scheduled or state in (states.RETRY, states.REJECTED)
    if work is not None:
        kind, member = work
        if kind == CHAIN:
            following = task.request.chain or []
            if state == states.SUCCESS and following:
                # Celery publishes the next link with the id it was frozen with.
                next_id = (following[-1].get("options") or {}).get("task_id")
                if next_id and rt.redis.exists(keys.pending(member)):
                    pipe.hset(keys.PENDING_TASK, member, next_id)
            pipe.zadd(keys.PENDING_INDEX, {member: now}, xx=True)
            # A chain that ended (inventory staged, dead letter, already done) was closed by its body.
        elif goes_on:
            pipe.zadd(keys.INFLIGHT_INDEX, {member: now}, xx=True)
        else:
            pipe.delete(keys.inflight(member))
            pipe.zrem(keys.INFLIGHT_INDEX, member)
            pipe.hdel(keys.SUSPECTS, member)
    pipe.execute()


# --- the keeper thread --------------------------------------------------------------------------
class Keeper(threading.Thread):
    """Heartbeat, retry release and reaping for one worker (see the module docstring)."""

    def __init__(self, app: Any, node: str, queues: list[str], settings: Settings) -> None:
        super().__init__(name="pipeline-keeper", daemon=True)
        self.app = app
        self.node = node
        self.queues = sorted(queues)
        self.settings = settings
        self._stop_event = threading.Event()
        self.client = redis_client(settings, socket_timeout=10, socket_connect_timeout=5)

    def heartbeat(self) -> None:
        beat = self.settings.worker_heartbeat_seconds
        info = json.dumps({"queues": self.queues, "host": self.node.split("@", 1)[-1], "at": time.time()})
        pipe = self.client.pipeline(transaction=False)
        pipe.set(keys.worker_alive(self.node), info, ex=max(1, int(round(3 * beat))))
        pipe.hset(keys.WORKERS, self.node, info)
        pipe.execute()

    def _beat_loop(self) -> None:
        # A thread of its own: a long reaper pass must never let this worker look dead.
        while True:
            self._guard("heartbeat", self.heartbeat)
            if self._stop_event.wait(self.settings.worker_heartbeat_seconds):
                return

    def run(self) -> None:
        from tasks.reaper import reap_once  # local: the reaper imports the task modules

        settings = self.settings
        self.heartbeat()  # alive before anything it runs can be judged
        threading.Thread(target=self._beat_loop, name="pipeline-heartbeat", daemon=True).start()
        tick = max(0.05, settings.retry_release_interval_seconds)
        next_reap = time.monotonic() + settings.reaper_interval_seconds / 2
        while True:
            now = time.monotonic()
            self._guard("retry release", lambda: release_due(self.app, self.client))
            if now >= next_reap:
                next_reap = now + settings.reaper_interval_seconds
                self._guard("reaper", lambda: reap_once(self.app, self.client, settings))
            if self._stop_event.wait(tick):
                return

    def stop(self) -> None:
        self._stop_event.set()
        # A clean stop: the reaper need not wait for the heartbeat to expire (else it expires).
        with contextlib.suppress(Exception):
            self.client.delete(keys.worker_alive(self.node))

    def _guard(self, what: str, action: Any) -> None:
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - the keeper outlives Redis and broker outages
            log.warning("keeper: %s failed: %s: %s", what, type(exc).__name__, exc)


_keeper: Keeper | None = None


@worker_ready.connect
def _start_keeper(sender: Any = None, **_: Any) -> None:
    global _keeper
    app = getattr(sender, "app", None)
    node = getattr(sender, "hostname", None)
    if app is None or not node or _keeper is not None:
        return
    selected = app.amqp.queues.consume_from
    queues = [q.name for q in selected.values()] if selected else list(app.amqp.queues)
    _keeper = Keeper(app, node, queues, get_settings())
    _keeper.start()


@worker_shutdown.connect
def _stop_keeper(**_: Any) -> None:
    if _keeper is not None:
        _keeper.stop()
