"""Prometheus metrics and health for Celery processes, wired through Celery's signals.

Connected by importing this module (``tasks.application`` does). What it does per process:

* **worker** (main process, ``worker_init``): serves ``/metrics`` (every pool child added up,
  ``core.metrics`` multiprocess mode), ``/healthz`` and ``/readyz`` (broker and Redis answer) on
  ``WORKER_METRICS_PORT``; at ``worker_ready`` marks the queues it consumes
  (``pipeline_worker_queue_consumers``); a pool child that exits has its live gauges dropped
  (``worker_process_shutdown``).
* **every task run** (in the pool child): duration and outcome (``task_prerun``/``task_postrun``).
  The outcome is exact: ``done`` (success), ``retried`` (``self.retry``), and for a run that ends
  with ``Ignore`` the decision ``tasks.base`` took and noted with :func:`note_outcome`
  (``requeued`` on an open circuit, ``dead_lettered``); ``failed`` when an exception escaped.
  ``pipeline.flush`` / ``pipeline.maintain`` results feed the Delta gauges.
* **Beat** (``beat_init``): serves the same endpoints on ``BEAT_METRICS_PORT`` plus the
  cluster-wide gauges, read from Redis at scrape time by :class:`ClusterCollector` (one Beat per
  deployment, so they are exported once).
* **logging**: ``LOG_FORMAT=json`` puts the JSON formatter on Celery's loggers, with the running
  task's ``task_id``, ``attempt``, ``domain``, ``stage`` and ``event_id`` on every line.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

import redis
from celery import Task, current_task
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    beat_init,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_shutdown,
    worker_ready,
)
from prometheus_client.core import GaugeMetricFamily

from core import keys
from core import metrics as m
from core.errors import ErrorCategory
from core.jsonlog import use_json_logs
from core.redis_client import redis_client, tls_options
from core.settings import Settings, get_settings
from domains.names import MAINTENANCE_QUEUE, Table
from domains.registry import all_queues, registered_tables, specs
from tasks.runtime import get_runtime
from writers.staging import DEFAULT_PREFIX, batch_key, stage_key

log = logging.getLogger("pipeline.monitoring")

#: Most unacknowledged messages inspected per scrape for ``pipeline_retries_scheduled``.
SCAN_UNACKED_MAX = 50_000


class Outcome(StrEnum):
    DONE = "done"
    RETRIED = "retried"
    REQUEUED = "requeued"
    DEAD_LETTERED = "dead_lettered"
    FAILED = "failed"
    IGNORED = "ignored"
    REJECTED = "rejected"


_started: dict[str, float] = {}
_notes: dict[str, Outcome] = {}
_endpoint: m.Endpoint | None = None
_tables_seen: set[str] = set()


def note_outcome(task: Task, outcome: Outcome | str, message: str | None = None) -> None:
    """Called by ``tasks.base`` where it decides: the run that ends now was re-queued or
    dead-lettered. A dead-lettered download with a permanent error counts as a refused download,
    by reason (``core.metrics.refusal_reason``)."""
    task_id = task.request.id
    if task_id:
        _notes[task_id] = Outcome(outcome)
    if message is not None and getattr(task, "stage", "") == "download":
        m.DOWNLOAD_REFUSED.labels(getattr(task, "domain", ""), m.refusal_reason(message)).inc()


# --- task runs ---------------------------------------------------------------------------------
@task_prerun.connect
def _task_started(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


@task_postrun.connect
def _task_ended(
    task_id: str | None = None,
    task: Task | None = None,
    retval: Any = None,
    state: str | None = None,
    **_: Any,
) -> None:
    if task is None or task_id is None:
        return
    started = _started.pop(task_id, None)
    noted = _notes.pop(task_id, None)
    outcome = _outcome(state, noted)
    m.TASK_RUNS.labels(task.name, outcome.value).inc()
    if started is not None:
        seconds = time.perf_counter() - started
        m.TASK_SECONDS.labels(task.name).observe(seconds)
        if outcome is Outcome.DONE and getattr(task, "stage", "") == "download":
            m.DOWNLOAD_SECONDS.labels(getattr(task, "domain", "")).observe(seconds)
    if outcome is not Outcome.DONE:
        return
    try:
        if task.name == "pipeline.flush" and isinstance(retval, dict):
            _refresh_tables([str(t) for t, rows in retval.items() if rows])
        elif task.name == "pipeline.maintain" and isinstance(retval, dict):
            for table, report in retval.items():
                skipped = isinstance(report, dict) and report.get("skipped")
                m.MAINTENANCE_RUNS.labels(table, "skipped" if skipped else "done").inc()
    except Exception:  # metrics never fail a task
        log.exception("could not update the Delta gauges after %s", task.name)


def _outcome(state: str | None, noted: Outcome | None) -> Outcome:
    if state == "SUCCESS":
        return Outcome.DONE
    if state == "RETRY":
        return Outcome.RETRIED
    if state == "IGNORED":
        return noted or Outcome.IGNORED
    if state == "REJECTED":
        return Outcome.REJECTED
    return Outcome.FAILED


def _refresh_tables(written: list[str]) -> None:
    """Rows and commit version of the tables a flush wrote (all tables on this process's first
    flush, so a restarted worker reports them again), read from the Delta log."""
    # Loaded here, in the maintenance worker only: deltalake and pyarrow take most of a second to
    # import, and every process that loads the Celery app (the dispatcher, the CLI) imports this module.
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    from writers.tables import storage_options, table_uri  # the Delta side, as above

    settings = get_runtime().settings
    todo = set(written) | ({str(t) for t in registered_tables()} - _tables_seen)
    for name in sorted(todo):
        uri, options = table_uri(settings, Table(name)), storage_options(settings)
        _tables_seen.add(name)
        if not DeltaTable.is_deltatable(uri, storage_options=options):
            continue
        table = DeltaTable(uri, storage_options=options)
        actions = pa.table(table.get_add_actions(flatten=True))
        rows = pc.sum(actions.column("num_records")).as_py() if actions.num_rows else 0
        m.TABLE_ROWS.labels(name).set(float(rows or 0))
        m.TABLE_VERSION.labels(name).set(float(table.version()))


# --- worker process lifecycle ------------------------------------------------------------------
@worker_init.connect
def _worker_started(sender: Any = None, **_: Any) -> None:
    global _endpoint
    settings = get_settings()
    app = getattr(sender, "app", None)
    health = _health(app, settings)
    _endpoint = m.serve("worker", settings.metrics_bind_address, settings.worker_metrics_port, health=health)


@worker_ready.connect
def _worker_consuming(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if app is None:
        return
    selected = app.amqp.queues.consume_from
    names = {q.name for q in selected.values()} if selected else set(app.amqp.queues)
    for name in sorted(names):
        m.WORKER_QUEUE_CONSUMERS.labels(name).set(1)
    try:
        _zero_counters(app, names)
    except Exception:  # a metric that shows up at its first increment only is no reason to fail
        log.exception("could not initialise the task counters")


def _zero_counters(app: Any, queues: set[str]) -> None:
    """Every counter this worker can increment starts at 0, so ``rate()``/``increase()`` see the
    first event and dashboards show a series before anything happened."""
    for name in app.tasks:
        parts = name.split(".")
        queue = MAINTENANCE_QUEUE if parts[0] == "pipeline" else ".".join(parts[:2])
        if name.startswith("celery.") or queue not in queues:
            continue
        for outcome in (
            Outcome.DONE,
            Outcome.RETRIED,
            Outcome.REQUEUED,
            Outcome.DEAD_LETTERED,
            Outcome.FAILED,
        ):
            m.TASK_RUNS.labels(name, outcome.value)
        if parts[1:2] == ["download"]:
            for reason in m.refusal_reasons():
                m.DOWNLOAD_REFUSED.labels(parts[0], reason)
            m.DOWNLOAD_BYTES.labels(parts[0])
        if parts[1:2] == ["enrich"]:
            m.PROJECT_CACHE.labels("hit")
            m.PROJECT_CACHE.labels("miss")
    if MAINTENANCE_QUEUE in queues:
        for table in registered_tables():
            for result in ("committed", "empty", "locked", "failed"):
                m.FLUSH_RUNS.labels(str(table), result)
            for result in ("done", "skipped"):
                m.MAINTENANCE_RUNS.labels(str(table), result)
            m.FLUSH_ROWS.labels(str(table))


@worker_process_shutdown.connect
def _child_exited(pid: int | None = None, **_: Any) -> None:
    m.forget_process(pid or os.getpid())


def _health(app: Any, settings: Settings) -> m.Health:
    """``/readyz`` of a worker or Beat process: the broker and Redis answer."""
    return m.Health(
        checks={
            "broker": broker_check(app),
            "redis": m.redis_check(settings.redis_url, **tls_options(settings)),
        }
    )


def broker_check(app: Any) -> m.Check:
    """The Celery broker answers: one connection attempt, no retry loop (a probe must be quick)."""

    def _check() -> None:
        if app is None:
            raise RuntimeError("no Celery app")
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)

    return _check


# --- Beat: the cluster-wide gauges -------------------------------------------------------------
@beat_init.connect
def _beat_started(sender: Any = None, **_: Any) -> None:
    global _endpoint

    settings = get_settings()
    app = getattr(sender, "app", None)
    health = _health(app, settings)
    client = redis_client(settings, socket_timeout=5, socket_connect_timeout=2)
    _endpoint = m.serve(
        "beat",
        settings.metrics_bind_address,
        settings.beat_metrics_port,
        health=health,
        collectors=[ClusterCollector(client)],
    )


class ClusterCollector:
    """Queue depths, unacknowledged and scheduled tasks, open dead letters, staged rows, flush age,
    chains in flight and the ClaimX circuit, read from Redis when Prometheus scrapes.

    Redis down: yields nothing (the endpoint's ``pipeline_ready{check="redis"}`` says why)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def collect(self) -> Iterable[Any]:
        try:
            values = self._read()
        except redis.RedisError as exc:
            log.warning("cluster gauges unavailable: %s", exc)
            return
        for name, (help_text, labels) in m.CLUSTER_GAUGES.items():
            family = GaugeMetricFamily(name, help_text, labels=list(labels))
            for label_values, value in values.get(name, {}).items():
                family.add_metric(list(label_values), float(value))
            yield family

    def _read(self) -> dict[str, dict[tuple[str, ...], float]]:
        tables = sorted(str(t) for t in registered_tables())

        r = self.client
        out: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in m.CLUSTER_GAUGES}
        queues = set(all_queues()) | {
            k.decode() for k in r.scan_iter(match="*.upload.host.*", count=500) if r.type(k) == b"list"
        }
        pipe = r.pipeline(transaction=False)
        for name in sorted(queues):
            pipe.llen(name)
        for name, depth in zip(sorted(queues), pipe.execute(), strict=True):
            out["pipeline_queue_depth"][(name,)] = depth
        out["pipeline_queue_unacked"][()] = r.hlen("unacked")
        out["pipeline_retries_scheduled"][()] = _scheduled(r)
        letters = out["pipeline_dead_letters_open"]
        for domain, spec in specs().items():  # a zero baseline, so "growing" compares with 0
            for stage in spec.stages:
                for category in ErrorCategory:
                    letters[(str(domain), str(stage), category.value)] = 0
        for key, count in _open_letters(r, [str(d) for d in specs()]).items():
            letters[key] = count
        pipe = r.pipeline(transaction=False)
        for table in tables:
            pipe.llen(stage_key(DEFAULT_PREFIX, table))
            pipe.llen(batch_key(DEFAULT_PREFIX, table))
        lengths = pipe.execute()
        for i, table in enumerate(tables):
            out["pipeline_delta_staged_rows"][(table,)] = lengths[2 * i] + lengths[2 * i + 1]
        now = time.time()
        for table, stamp in r.hgetall(m.FLUSH_SUCCESS_KEY).items():
            out["pipeline_delta_last_flush_age_seconds"][(table.decode(),)] = max(0.0, now - float(stamp))
        out["pipeline_attachment_chains_in_flight"][()] = r.zcard(keys.PENDING_INDEX)
        state = r.hget(f"{keys.BREAKER_PREFIX}:claimx_api", "state")
        out["pipeline_claimx_circuit_state"][("claimx_api",)] = _CIRCUIT.get(
            state.decode() if state else "closed", 0
        )
        return out


_CIRCUIT = {"closed": 0, "half_open": 1, "open": 2}


def _scheduled(r: Any) -> int:
    """Retries and re-queues waiting for their time: the durable schedule's entries
    (``core.schedule``) plus unacknowledged messages whose ETA is still ahead (left by a version
    that kept retries in the broker); the same count as ``pipeline status``'s ``scheduled``."""
    now = time.time()
    count, seen = int(r.zcard(keys.SCHEDULE_DUE)), 0
    for _tag, raw in r.hscan_iter("unacked", count=1000):
        seen += 1
        if seen > SCAN_UNACKED_MAX:
            break
        try:
            eta = (json.loads(raw)[0].get("headers") or {}).get("eta")
            if eta and datetime.fromisoformat(eta).timestamp() > now:
                count += 1
        except (ValueError, TypeError, IndexError, AttributeError):
            continue  # not a Celery message
    return count


def _open_letters(r: Any, domains: list[str]) -> dict[tuple[str, str, str], int]:
    counts: dict[tuple[str, str, str], int] = {}
    for domain in domains:
        ids = [i.decode() for i in r.zrange(keys.dead_letter_index(domain), 0, -1)]
        for start in range(0, len(ids), 1000):
            pipe = r.pipeline(transaction=False)
            for letter_id in ids[start : start + 1000]:
                pipe.hmget(keys.dead_letter(letter_id), "status", "stage", "category")
            for status, stage, category in pipe.execute():
                if status is None or status.decode() != "open":
                    continue
                key = (domain, stage.decode() if stage else "", category.decode() if category else "")
                counts[key] = counts.get(key, 0) + 1
    return counts


# --- logs --------------------------------------------------------------------------------------
class TaskContext(logging.Filter):
    """Adds the running task's ``task_id``, ``attempt``, ``domain``, ``stage`` and ``event_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        task = current_task
        request = getattr(task, "request", None) if task else None
        if request is None or not getattr(request, "id", None):
            return True
        record.__dict__.setdefault("task_id", request.id)
        record.__dict__.setdefault("task_name", task.name)
        record.__dict__.setdefault("attempt", (request.retries or 0) + 1)
        for key in ("domain", "stage"):
            if getattr(task, key, ""):
                record.__dict__.setdefault(key, getattr(task, key))
        args = request.args or ()
        payload = args[0] if args and isinstance(args[0], dict) else None
        if payload and payload.get("event_id"):
            record.__dict__.setdefault("event_id", payload["event_id"])
        return True


_context = TaskContext()
_json_lock = threading.Lock()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _json_logs(logger: logging.Logger | None = None, **_: Any) -> None:
    if logger is None or get_settings().log_format != "json":
        return
    with _json_lock:
        use_json_logs(logger)
        for handler in logger.handlers:
            if _context not in handler.filters:
                handler.addFilter(_context)
