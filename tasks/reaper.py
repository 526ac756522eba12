"""The reaper: re-drives work whose worker is gone and work the broker lost (docs/reliability.md).

One pass (:func:`reap`) reads, in this order (the order work moves: queue, unacknowledged, running):

1. **Live workers**: nodes whose heartbeat key (``keys.worker_alive``) exists, and the queues
   they consume (``keys.WORKERS``).
2. **Unacknowledged messages** (kombu's ``unacked`` hash, ``unacked_index`` delivery times). One
   delivered more than ``REAPER_UNACKED_GRACE_SECONDS`` ago that no live worker is running belongs
   to a dead worker (a live one starts what it receives at once: prefetch = concurrency): it is
   restored to its queue (kombu's own restore, just not after the visibility timeout). An upload
   of a host-local queue nobody consumes any more is instead re-driven from ``download`` (the
   cached file died with its host).
3. **Runs of dead workers** (``keys.RUNNING``): a task acknowledged on receipt (``pipeline.flush``)
   is re-sent from its record; the record is dropped. So is a record older than the hard time
   limit (left by a pool child that was killed: its message comes back through Celery).
4. **Host-local upload queues without a live consumer** (``keys.HOST_QUEUES``, listed by the
   workers that consume them): each message is taken off and its chain re-driven from
   ``download`` on a live host.
5. **Lost messages** (kombu's fetch window): an in-flight entry (attachment chain or single task)
   silent for ``REAPER_LOST_AFTER_SECONDS`` whose current message is nowhere (not run by a live
   worker, not unacknowledged, not scheduled, in no queue) is marked suspect; still nowhere at a
   later pass, it is re-driven. Found somewhere, it is touched (checked again after the same time).

Safe to run concurrently: every worker's keeper calls :func:`reap_once`, which runs a pass only
under a Redis lock (``tasks.beat.single_run``), and every move is atomic on its own (a restore is
kombu's transaction on ``unacked``; a queue message is taken with ``RPOP``). Re-driving is safe
because every stage is idempotent: rows are merged by key, a file with the same bytes is "already
stored", a finished attachment's ``done`` marker turns a repeat into a no-op.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from celery import Celery, signature

from core import keys
from core.schedule import RetrySchedule
from core.settings import Settings
from core.state import Counters, PendingAttachments, PendingTasks
from domains.attachments import AttachmentJob
from domains.registry import all_queues

log = logging.getLogger("pipeline.reaper")

UNACKED, UNACKED_INDEX = "unacked", "unacked_index"  # kombu's Redis transport defaults
HOST_UPLOAD = ".upload.host."
_HDEL_IF_LUA = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""
_ID = re.compile(rb'"id":\s*"([^"]+)"')


@dataclass
class ReapReport:
    restored: int = 0
    chains_redriven: int = 0
    tasks_redriven: int = 0
    suspects: int = 0
    dead_workers: list[str] = field(default_factory=list)

    @property
    def acted(self) -> bool:
        return bool(self.restored or self.chains_redriven or self.tasks_redriven)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def live_workers(client: Any) -> dict[str, dict[str, Any]]:
    """Node -> its heartbeat info (queues, host) for every worker whose heartbeat key exists."""
    nodes = [_text(n) for n in client.hkeys(keys.WORKERS)]
    if not nodes:
        return {}
    beats = client.mget([keys.worker_alive(n) for n in nodes])
    return {n: json.loads(b) for n, b in zip(nodes, beats, strict=True) if b is not None}


def message_body(message: dict[str, Any]) -> list[Any]:
    """``[args, kwargs, embed]`` of a Celery protocol-2 message as kombu's Redis transport stores it."""
    body = message.get("body", "")
    if (message.get("properties") or {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    return json.loads(body)


class Reaper:
    """One pass over the state (see the module docstring); build a new one per pass."""

    def __init__(self, app: Celery, client: Any, settings: Settings, now: float | None = None) -> None:
        self.app = app
        self.r = client
        self.settings = settings
        self.now = time.time() if now is None else now
        self.chains = PendingAttachments(client)
        self.tasks = PendingTasks(client)
        self.counters = Counters(client)
        self.report = ReapReport()
        self.live = live_workers(client)
        self.live_queues = {q for info in self.live.values() for q in info.get("queues", [])}
        self._running_raw = {_text(k): v for k, v in client.hgetall(keys.RUNNING).items()}
        self.running: dict[str, dict[str, Any]] = {k: json.loads(v) for k, v in self._running_raw.items()}
        self.unacked_ids: set[str] = set()

    def run_live(self, task_id: str) -> bool:
        """A live worker runs it now: its record names a live worker and is younger than the hard
        time limit (a record left by a pool child that was killed does not count)."""
        rec = self.running.get(task_id)
        return rec is not None and rec.get("worker") in self.live and not self._expired(rec)

    def _expired(self, rec: dict[str, Any]) -> bool:
        return float(rec.get("at", 0)) < self.now - self.settings.task_time_limit_seconds - 60

    # -- 2. unacknowledged messages of dead workers ---------------------------------------------
    def reap_unacked(self) -> None:
        delivered = {_text(t): s for t, s in self.r.zrange(UNACKED_INDEX, 0, -1, withscores=True)}
        grace = self.now - self.settings.reaper_unacked_grace_seconds
        for tag, raw in self.r.hgetall(UNACKED).items():
            tag = _text(tag)
            try:
                message, _exchange, routing_key = json.loads(raw)
                task_id = message["headers"]["id"]
            except (ValueError, KeyError, TypeError):
                continue  # not a Celery message: kombu's visibility timeout still covers it
            self.unacked_ids.add(task_id)
            if self.run_live(task_id) or delivered.get(tag, self.now) > grace:
                continue
            if (message.get("properties") or {}).get("priority"):
                continue  # a priority sub-queue: left to kombu's visibility timeout
            if HOST_UPLOAD in str(routing_key) and routing_key not in self.live_queues:
                if self._drop_unacked(tag):
                    self.redrive_chain_of(message)
                continue
            if self._restore(tag, str(routing_key)):
                self.report.restored += 1
                log.warning("reaper: restored %s (%s), its worker is gone", task_id, routing_key)

    def _restore(self, tag: str, queue: str) -> bool:
        """kombu's own restore (``QoS.restore_by_tag``: one transaction on ``unacked``, the
        message marked redelivered and pushed to the consuming end of its queue), to the queue its
        routing key names: every pipeline queue is bound by its own name."""

        def move(pipe: Any) -> None:
            raw = pipe.hget(UNACKED, tag)
            pipe.multi()
            pipe.hdel(UNACKED, tag)
            pipe.zrem(UNACKED_INDEX, tag)
            if raw is not None:
                message = json.loads(raw)[0]
                message.setdefault("headers", {})["redelivered"] = True
                message.setdefault("properties", {}).setdefault("delivery_info", {})["redelivered"] = True
                pipe.rpush(queue, json.dumps(message))
            moved.append(raw is not None)

        moved: list[bool] = []
        self.r.transaction(move, UNACKED)
        return bool(moved and moved[-1])

    def _drop_unacked(self, tag: str) -> bool:
        pipe = self.r.pipeline(transaction=True)
        pipe.hdel(UNACKED, tag)
        pipe.zrem(UNACKED_INDEX, tag)
        removed, _ = pipe.execute()
        return bool(removed)

    # -- 3. runs of dead workers --------------------------------------------------------------------
    def reap_dead_runs(self) -> None:
        dead_workers = set()
        for task_id, rec in list(self.running.items()):
            worker = rec.get("worker")
            if worker in self.live and not self._expired(rec):
                continue
            if worker not in self.live:
                dead_workers.add(str(worker))
            redo = rec.get("redo")
            if redo is not None and task_id not in self.unacked_ids:
                signature(redo, app=self.app).apply_async()
                self.report.tasks_redriven += 1
                log.warning("reaper: re-sent %s %s, its worker %s is gone", redo.get("task"), task_id, worker)
            # Only this record: a restored message may already run again on a live worker.
            self._hdel_if(keys.RUNNING, task_id, self._running_raw[task_id])
            del self.running[task_id]
        self.report.dead_workers = sorted(dead_workers)
        # Forget gone workers that hold nothing any more (keeps keys.WORKERS to live ones).
        holding = {rec.get("worker") for rec in self.running.values()}
        gone = [_text(n) for n in self.r.hkeys(keys.WORKERS)]
        gone = [
            n
            for n in gone
            if n not in self.live and n not in holding and not self.r.exists(keys.worker_alive(n))
        ]
        if gone:
            self.r.hdel(keys.WORKERS, *gone)

    def _hdel_if(self, key: str, field_name: str, value: Any) -> None:
        self.r.eval(_HDEL_IF_LUA, 1, key, field_name, value)

    # -- 4. host-local upload queues nobody consumes --------------------------------------------
    def reap_host_queues(self) -> None:
        for name in self.r.smembers(keys.HOST_QUEUES):
            queue = _text(name)
            if queue in self.live_queues:
                continue
            while (raw := self.r.rpop(queue)) is not None:
                try:
                    self.redrive_chain_of(json.loads(raw))
                except (ValueError, KeyError, TypeError, IndexError) as exc:
                    log.error("reaper: unreadable message on %s dropped: %s", queue, type(exc).__name__)
            self.r.srem(keys.HOST_QUEUES, queue)  # a worker that comes back on that host adds it again

    # -- 5. lost messages ---------------------------------------------------------------------------
    def reap_lost(self) -> None:
        older = self.now - self.settings.reaper_lost_after_seconds
        chain_entries = self.chains.stale(older)
        task_entries = self.tasks.stale(older)
        expected: dict[str, tuple[str, str, str]] = {}  # task id -> (kind, member, payload)
        for (member, payload), task_id in zip(
            chain_entries, self.chains.task_ids([m for m, _ in chain_entries]), strict=True
        ):
            if task_id:  # a chain without a known message id is left to pipeline.sweep
                expected[task_id] = ("chain", member, payload)
        for member, payload in task_entries:
            expected[member] = ("task", member, payload)
        if not expected:
            return
        present = {t for t in expected if self.run_live(t) or t in self.unacked_ids}
        present |= RetrySchedule(self.r).scheduled([t for t in expected if t not in present])
        missing = set(expected) - present
        if missing:
            present |= self._ids_in_queues(missing)
        suspects = {
            _text(k): float(v)
            for k, v in zip(
                [e[1] for e in expected.values()],
                self.r.hmget(keys.SUSPECTS, [e[1] for e in expected.values()]),
                strict=True,
            )
            if v is not None
        }
        for task_id, (kind, member, payload) in expected.items():
            registry = self.chains if kind == "chain" else self.tasks
            if task_id in present:  # waiting somewhere: look again after REAPER_LOST_AFTER_SECONDS
                registry.touch(member, now=self.now)
                self.r.hdel(keys.SUSPECTS, member)
                continue
            if member not in suspects:
                self.r.hset(keys.SUSPECTS, member, self.now)
                self.report.suspects += 1
                continue
            try:
                if kind == "chain":
                    self.redrive_chain(AttachmentJob.model_validate_json(payload), member)
                else:
                    self.redrive_task(member, payload)
            except (ValueError, TypeError, KeyError) as exc:
                # An entry that cannot be re-driven never will be: drop it, loudly (its event's
                # dead letter, if any, is the durable record).
                log.error("reaper: in-flight entry %s cannot be re-driven (%s); dropped", member, exc)
                registry.done(member)
                self.counters.incr("pipeline", "reaper_unreadable_entries")

    def _ids_in_queues(self, wanted: set[str]) -> set[str]:
        queues = set(all_queues()) | {q for q in self.live_queues if HOST_UPLOAD in q}
        found: set[str] = set()
        wanted_bytes = {w.encode() for w in wanted}
        for queue in sorted(queues):
            length = int(self.r.llen(queue))
            for start in range(0, length, 1000):
                for raw in self.r.lrange(queue, start, start + 999):
                    found |= {i.decode() for i in _ID.findall(raw) if i in wanted_bytes}
            if found == wanted:
                break
        return found

    # -- re-driving -------------------------------------------------------------------------------
    def redrive_chain_of(self, message: dict[str, Any]) -> None:
        """Re-drive the chain a stage message belongs to, from ``download``."""
        args = message_body(message)[0]
        job = AttachmentJob.model_validate(args[0])
        member = job.vault_key()
        original = self.r.get(keys.pending(member))
        if original is not None:
            job = AttachmentJob.model_validate_json(original)
        self.redrive_chain(job, member)

    def redrive_chain(self, job: AttachmentJob, member: str) -> None:
        from tasks.canvas import attachment_chain  # local: tasks.canvas imports the app

        if self.r.exists(keys.done(job.domain.value, job.media_id)):
            self.chains.done(member)
            return
        fresh = job.for_new_run()
        chain = attachment_chain(self.app, fresh)
        first = chain.tasks[0]
        first.freeze()
        first_id = str(first.id)
        if not self.r.exists(keys.pending(member)):
            self.chains.add_many({member: fresh.model_dump_json()}, now=self.now)
        self.chains.expect(member, first_id, now=self.now)
        chain.apply_async()
        self.counters.incr(job.domain, "chains_redriven")
        self.report.chains_redriven += 1
        log.warning("reaper: re-drove attachment chain %s from download (%s)", member, first_id)

    def redrive_task(self, task_id: str, payload: str) -> None:
        redo = json.loads(payload)
        redo.setdefault("options", {})["task_id"] = task_id
        self.tasks.touch(task_id, now=self.now)
        self.r.hdel(keys.SUSPECTS, task_id)
        signature(redo, app=self.app).apply_async()
        domain = str(redo.get("task", "pipeline")).split(".", 1)[0]
        self.counters.incr(domain, "tasks_redriven")
        self.report.tasks_redriven += 1
        log.warning("reaper: re-sent lost %s %s", redo.get("task"), task_id)


def reap(app: Celery, client: Any, settings: Settings, now: float | None = None) -> ReapReport:
    """One reaper pass (no lock: see :func:`reap_once`)."""
    reaper = Reaper(app, client, settings, now)
    reaper.reap_unacked()
    reaper.reap_dead_runs()
    reaper.reap_host_queues()
    reaper.reap_lost()
    return reaper.report


def reap_once(app: Celery, client: Any, settings: Settings) -> ReapReport | None:
    """A pass under the reaper lock; None when another worker's reaper runs one right now."""
    from tasks.beat import single_run  # the lock helper every scheduled job uses

    with single_run(client, "reaper", ttl_seconds=max(60.0, 2 * settings.reaper_interval_seconds)) as mine:
        if not mine:
            return None
        return reap(app, client, settings)
