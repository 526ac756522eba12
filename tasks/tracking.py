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

#: HSET the chain's next message id only while its record exists (a chain closed meanwhile stays
#: closed). EVAL, not EVALSHA: a script in a pipeline would cost a SCRIPT EXISTS round trip.
_EXPECT_IF_PENDING = (
    "if redis.call('exists', KEYS[1]) == 1 then redis.call('hset', KEYS[2], ARGV[1], ARGV[2]) end"
)
_CHAIN_STAGES = ("download", "upload")
#: HDEL a run record only if it still holds the value that was read (a rerun may have replaced it).
_HDEL_IF_SAME = "if redis.call('hget', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('hdel', KEYS[1], ARGV[1]) end return 0"


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


#: The worker and start time of the run in progress (:data:`_current`), while its task folds its
#: start record into its own first round trip (``fold_start``: a stage that touches Redis before any
#: long work); the record is built only when it is sent, so a stage that drops it
#: (:func:`finish_into`) never pays for it. A pool process runs one task at a time.
_unsent_start: tuple[str, float] | None = None


def start_into(pipe: Any) -> Any:
    """Queue the run's start record (if still unsent) first on ``pipe``, the stage's first round
    trip; returns ``pipe``. A stage that never calls it has the record sent by :func:`record_end`,
    first in its round trip, so the records end as they always did."""
    global _unsent_start
    pending, _unsent_start = _unsent_start, None
    if pending is None or _current is None:
        return pipe
    return _start_records(pipe, *_current, *pending)


#: The run in progress in this pool process (set by :func:`record_start`), and the id of the run
#: whose end as a success its stage already queued in its own last round trip (:func:`end_into`).
_current: tuple[Task, str, Any, Any] | None = None
_end_sent: str | None = None


def end_into(pipe: Any) -> Any:
    """Queue the run's end records, as a success, last on ``pipe``: the stage's closing round trip,
    the last thing it does before it returns (a ``MULTI`` makes them land with its effect or not at
    all); returns ``pipe``. :func:`record_end` then sends nothing more for a success; a run that
    ends otherwise after all gets its own end records as before."""
    global _end_sent
    if _current is None:
        return pipe
    task, task_id, args, kwargs = _current
    _end_records(pipe, task, task_id, args, kwargs, states.SUCCESS, scheduled=False)
    _end_sent = task_id
    return pipe


def finish_into(pipe: Any) -> Any:
    """For a stage whose whole effect is ONE ``MULTI`` (``pipe``): queue the run's end records as a
    success (:func:`end_into`) and drop its unsent start record, which that same transaction would
    write and remove again (the run record, the in-flight entry its publisher already made, the
    index entry). Before the ``MULTI`` nothing of the run is in Redis but what its publisher wrote,
    as before its start record; after it, what its end records leave. Returns ``pipe``."""
    global _unsent_start
    _unsent_start = None
    return end_into(pipe)


def record_start(task: Task, task_id: str, args: Any, kwargs: Any) -> None:
    global _unsent_start, _current, _end_sent
    rt = get_runtime()
    rt.counters.discard_later()
    _unsent_start, _current, _end_sent = None, (task, task_id, args, kwargs), None
    start = (task.request.hostname or rt.hostname, time.time())
    if getattr(task, "fold_start", False):
        _unsent_start = start  # sent with the stage's first round trip (start_into)
        return
    _start_records(rt.redis.pipeline(transaction=False), task, task_id, args, kwargs, *start).execute()


def _start_records(
    pipe: Any, task: Task, task_id: str, args: Any, kwargs: Any, worker: str, now: float
) -> Any:
    """Queue the run record and its work's in-flight entry on ``pipe``; returns ``pipe``."""
    record: dict[str, Any] = {"worker": worker, "pid": os.getpid(), "at": now, "task": task.name}
    if not getattr(task, "acks_late", True):
        record["redo"] = redo_of(task, task_id, args, kwargs)
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
    return pipe


def record_end(
    task: Task, task_id: str, args: Any, kwargs: Any, state: str | None, *, scheduled: bool
) -> None:
    global _current, _end_sent
    rt = get_runtime()
    pipe = start_into(rt.redis.pipeline(transaction=False))  # a start the stage did not send
    folded = _end_sent == task_id and state == states.SUCCESS and not scheduled
    _current, _end_sent = None, None
    if not folded:
        _end_records(pipe, task, task_id, args, kwargs, state, scheduled=scheduled)
    rt.counters.drain_into(pipe)  # the stage's figures (``Counters.later``), in this round trip
    if len(pipe):
        pipe.execute()


def _end_records(
    pipe: Any, task: Task, task_id: str, args: Any, kwargs: Any, state: str | None, *, scheduled: bool
) -> None:
    now = time.time()
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
                if next_id:  # only while the chain is on record; in this round trip (issue 9)
                    pipe.eval(_EXPECT_IF_PENDING, 2, keys.pending(member), keys.PENDING_TASK, member, next_id)
            pipe.zadd(keys.PENDING_INDEX, {member: now}, xx=True)
            # A chain that ended (inventory staged, dead letter, already done) was closed by its body.
        elif goes_on:
            pipe.zadd(keys.INFLIGHT_INDEX, {member: now}, xx=True)
        else:
            pipe.delete(keys.inflight(member))
            pipe.zrem(keys.INFLIGHT_INDEX, member)
            pipe.hdel(keys.SUSPECTS, member)


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
        self._logged: dict[str, float] = {}
        self.client = redis_client(settings, socket_timeout=10, socket_connect_timeout=5)

    def heartbeat(self) -> None:
        beat = self.settings.worker_heartbeat_seconds
        info = json.dumps({"queues": self.queues, "host": self.node.split("@", 1)[-1], "at": time.time()})
        pipe = self.client.pipeline(transaction=False)
        pipe.set(keys.worker_alive(self.node), info, ex=max(1, int(round(3 * beat))))
        pipe.hset(keys.WORKERS, self.node, info)
        host_queues = [q for q in self.queues if ".upload.host." in q]
        if host_queues:  # the reaper finds a dead host's queue here, without a SCAN
            pipe.sadd(keys.HOST_QUEUES, *host_queues)
        pipe.execute()

    def drop_dead_runs(self) -> None:
        """Forget this worker's run records whose pool process is gone.

        A pool process can end without ``task_postrun``: SIGKILLed, or terminated by Celery itself
        when the broker connection drops under a late-acknowledged task ("cannot be acknowledged
        after a connection loss ... Terminating it instead"). Its record would make the reaper
        count the task as run by this live worker, so neither its unacknowledged message nor its
        in-flight entry would be re-driven until the record ages past the time limit (found by
        ``make chaos``: a Redis SIGKILL under load stalled three tasks for ~16 min).
        """
        for task_id, raw in self.client.hgetall(keys.RUNNING).items():
            try:
                rec = json.loads(raw)
                pid = int(rec.get("pid") or 0)
            except (ValueError, TypeError):
                continue
            if rec.get("worker") == self.node and pid > 0 and not _process_alive(pid):
                self.client.eval(_HDEL_IF_SAME, 1, keys.RUNNING, task_id, raw)

    def _beat_loop(self) -> None:
        # A thread of its own: a long reaper pass must never let this worker look dead.
        while True:
            self._guard("heartbeat", self.heartbeat)
            self._guard("dead runs", self.drop_dead_runs)
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
            # One line per action per 30 s: an outage must not flood the log once a second.
            now = time.monotonic()
            if now - self._logged.get(what, -1e9) >= 30:
                self._logged[what] = now
                log.warning("keeper: %s failed: %s: %s", what, type(exc).__name__, exc)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
