"""Every Prometheus metric of the pipeline, declared once (name, help text, labels), and the
process's metrics/health HTTP endpoint.

Who exports what (README "Monitoring"):

* every long-running process serves ``/metrics``, ``/healthz`` and ``/readyz`` on its own port
  (``*_METRICS_PORT``, bound to ``METRICS_BIND_ADDRESS``), see :func:`serve`;
* a Celery worker's port shows all its pool processes added up: the process runs in
  ``prometheus_client``'s multiprocess mode (below), and the main process, which serves the port,
  reads every child's files;
* the cluster-wide gauges (queue depths, dead letters, staged rows, flush age, circuit state) are
  read from Redis at scrape time by one process only, Beat (``tasks.monitoring``), so they are not
  exported N times.

Multiprocess mode is chosen when this module is first imported, before any metric exists:
each interpreter gets its own directory ``{tmp}/claims-pipeline-metrics/{pid}``, emptied at
start, so two processes on one host never add up each other's files, and a pool child forked
from the interpreter writes into its parent's directory. Counter and histogram files of exited
children stay (their counts must not go backwards); live gauges of exited processes are dropped
(:func:`reap_dead_processes`).

This module imports nothing else of the project but ``core``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import redis

from core.security.redact import sanitize_error

log = logging.getLogger("pipeline.metrics")

MULTIPROC_ROOT = Path(tempfile.gettempdir()) / "claims-pipeline-metrics"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _prepare_multiprocess_dir() -> Path:
    """This interpreter's own, empty metrics directory; stale siblings of dead processes go."""
    MULTIPROC_ROOT.mkdir(parents=True, exist_ok=True)
    for sibling in MULTIPROC_ROOT.iterdir():
        if sibling.name.isdigit() and not _pid_alive(int(sibling.name)):
            shutil.rmtree(sibling, ignore_errors=True)
    own = MULTIPROC_ROOT / str(os.getpid())
    shutil.rmtree(own, ignore_errors=True)  # a previous process with this pid (container restarts)
    own.mkdir(parents=True)
    return own


MULTIPROC_DIR = _prepare_multiprocess_dir()
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(MULTIPROC_DIR)

from prometheus_client import (  # noqa: E402 - multiprocess mode must be chosen before the first metric
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric  # noqa: E402 - after the mode choice, as above
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead  # noqa: E402 - as above

# prometheus_client chose its value class at its own import, which may have come first (Flower
# imports it): choose again now that the directory is set.
values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]  # prometheus_client leaves it untyped

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
_FAST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# --- dispatcher --------------------------------------------------------------------------------
DISPATCHER_RECORDS_READ = Counter(
    "pipeline_dispatcher_records_read", "Kafka records the dispatcher read, per domain.", ["domain"]
)
DISPATCHER_EVENTS_DISPATCHED = Counter(
    "pipeline_dispatcher_events_dispatched", "Events the dispatcher turned into canvases.", ["domain"]
)
DISPATCHER_DUPLICATES = Counter(
    "pipeline_dispatcher_duplicates_skipped",
    "Events skipped because the dispatch ledger (or the same batch) already held their id.",
    ["domain"],
)
DISPATCHER_DEAD_LETTERED = Counter(
    "pipeline_dispatcher_dead_lettered",
    "Records that could not be parsed and went to the domain's Kafka dead-letter topic.",
    ["domain"],
)
DISPATCHER_CONSUMER_LAG = Gauge(
    "pipeline_dispatcher_consumer_lag",
    "Records behind the high watermark per assigned partition (asked of the broker every few seconds).",
    ["topic", "partition"],
    multiprocess_mode="livemostrecent",
)
DISPATCHER_BATCH_SECONDS = Histogram(
    "pipeline_dispatcher_batch_duration_seconds",
    "Time to poll, parse, enqueue and commit one dispatcher batch.",
    buckets=_FAST_BUCKETS,
)
#: Families the dispatcher's collector reads from its in-process ``DispatcherMetrics`` at scrape
#: time: name -> (type, help, labels).
DISPATCHER_FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "pipeline_dispatcher_commits": ("counter", "Kafka offset commits (one per batch that read records).", ()),
    "pipeline_dispatcher_batch_failures": (
        "counter",
        "Batches that failed and are read again (Kafka, Redis or a dead-letter delivery).",
        (),
    ),
    "pipeline_dispatcher_dead_lettered_by_stage": (
        "counter",
        "Records sent to the Kafka dead-letter topic by the step that failed (parse, plan, enqueue).",
        ("stage",),
    ),
    "pipeline_dispatcher_redis_oom_refusals": ("counter", "Writes a full Redis refused (intake paused).", ()),
    "pipeline_dispatcher_paused": (
        "gauge",
        "1 while backpressure holds the domain's partitions.",
        ("domain",),
    ),
    "pipeline_dispatcher_paused_seconds": ("counter", "Seconds intake spent paused by backpressure.", ()),
    "pipeline_dispatcher_backlog": ("gauge", "Backlog the backpressure check last measured.", ("what",)),
}
DISPATCHER_LAST_BATCH = Gauge(
    "pipeline_dispatcher_last_loop_timestamp_seconds",
    "When the dispatcher's consume loop last completed a poll (liveness).",
    multiprocess_mode="livemax",
)

# --- workers and stages ------------------------------------------------------------------------
TASK_RUNS = Counter(
    "pipeline_task_runs",
    "Task runs by task name and outcome: done, retried, requeued (circuit open), dead_lettered, "
    "failed (an error no stage rule handled), ignored.",
    ["task", "outcome"],
)
TASK_SECONDS = Histogram(
    "pipeline_task_duration_seconds", "Wall time of one task run.", ["task"], buckets=_DURATION_BUCKETS
)
WORKER_QUEUE_CONSUMERS = Gauge(
    "pipeline_worker_queue_consumers",
    "1 for each queue this worker consumes (sum over workers = consumers per queue).",
    ["queue"],
    multiprocess_mode="livemax",
)
COUNTER_EVENTS = Counter(
    "pipeline_counter",
    "The operational counters of `pipeline summary` (events_read, uploaded, bytes_downloaded, ...), "
    "as this process incremented them.",
    ["domain", "name"],
)
DOWNLOAD_BYTES = Counter("pipeline_download_bytes", "Bytes of attachments downloaded.", ["domain"])
DOWNLOAD_SECONDS = Histogram(
    "pipeline_download_duration_seconds",
    "Time to stream one attachment to the cache (successful downloads).",
    ["domain"],
    buckets=_DURATION_BUCKETS,
)
DOWNLOAD_REFUSED = Counter(
    "pipeline_download_refused",
    "Attachment URLs or responses refused by the download rules, by reason.",
    ["domain", "reason"],
)

# --- ClaimX API ------------------------------------------------------------------------------------
API_REQUESTS = Counter(
    "pipeline_claimx_api_requests",
    "ClaimX API requests by endpoint (path template) and HTTP status (or 'error' when no response).",
    ["endpoint", "status"],
)
API_SECONDS = Histogram(
    "pipeline_claimx_api_latency_seconds", "ClaimX API request latency.", ["endpoint"], buckets=_FAST_BUCKETS
)
API_RATE_LIMIT_WAITS = Counter(
    "pipeline_claimx_ratelimit_waits", "Times a ClaimX request waited for the shared rate limiter."
)
API_RATE_LIMIT_WAIT_SECONDS = Counter(
    "pipeline_claimx_ratelimit_wait_seconds", "Seconds ClaimX requests spent waiting for the rate limiter."
)
PROJECT_CACHE = Counter(
    "pipeline_claimx_project_cache", "Project-cache lookups by result (hit or miss).", ["result"]
)

# --- Delta ---------------------------------------------------------------------------------------
FLUSH_SECONDS = Histogram(
    "pipeline_delta_flush_duration_seconds",
    "Time of one table flush that took rows (claim, merge, commit).",
    ["table"],
    buckets=_DURATION_BUCKETS,
)
FLUSH_ROWS = Counter(
    "pipeline_delta_rows_written", "Rows inserted or updated by flushes, per table.", ["table"]
)
FLUSH_RUNS = Counter(
    "pipeline_delta_flushes",
    "Table flushes by result (committed, empty, locked, failed).",
    ["table", "result"],
)
TABLE_ROWS = Gauge(
    "pipeline_delta_table_rows",
    "Rows in the Delta table after the last flush that committed (from the Delta log).",
    ["table"],
    multiprocess_mode="livemostrecent",
)
TABLE_VERSION = Gauge(
    "pipeline_delta_table_version",
    "The Delta table's commit version after the last flush that committed.",
    ["table"],
    multiprocess_mode="livemostrecent",
)
MAINTENANCE_RUNS = Counter(
    "pipeline_delta_maintenance_runs",
    "Table maintenance (compact + vacuum) runs by result.",
    ["table", "result"],
)

# --- cluster-wide gauges (Beat reads them from Redis at scrape time; see tasks.monitoring) -------
#: (name, help, labels) of the gauges the cluster collector yields; declared here so every name
#: lives in this module.
CLUSTER_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "pipeline_queue_depth": ("Messages waiting in a Celery queue.", ("queue",)),
    "pipeline_queue_unacked": ("Tasks delivered to a worker and not yet acknowledged.", ()),
    "pipeline_retries_scheduled": (
        "Retries and re-queues waiting for their countdown (ETA messages held by workers).",
        (),
    ),
    "pipeline_dead_letters_open": (
        "Open dead letters by domain, stage and category.",
        ("domain", "stage", "category"),
    ),
    "pipeline_delta_staged_rows": ("Rows staged for the next flush (incl. a claimed batch).", ("table",)),
    "pipeline_delta_last_flush_age_seconds": (
        "Seconds since the last successful flush of the table (a flush with nothing to do counts).",
        ("table",),
    ),
    "pipeline_attachment_chains_in_flight": ("Attachment chains dispatched and not yet ended.", ()),
    "pipeline_claimx_circuit_state": (
        "The shared ClaimX API breaker: 0 closed, 1 half-open, 2 open.",
        ("breaker",),
    ),
}

#: Redis hash: table -> unix time of its last successful flush (:func:`record_flushes`).
FLUSH_SUCCESS_KEY = "pipeline:flush:last_success"

# --- poller --------------------------------------------------------------------------------------
POLLER_ROWS = Counter("pipeline_poller_rows_read", "Rows the Eventhouse poller fetched.", ["domain"])
POLLER_ROWS_PUBLISHED = Counter(
    "pipeline_poller_rows_published",
    "Rows the poller published to Kafka (new past the checkpoint).",
    ["domain"],
)
POLLER_CHECKPOINT = Gauge(
    "pipeline_poller_checkpoint_timestamp_seconds",
    "Ingestion time of the poller's checkpoint (unix seconds).",
    ["domain"],
    multiprocess_mode="livemostrecent",
)
#: Yielded by the poller's own collector at scrape time: now minus the checkpoint's ingestion time.
POLLER_CHECKPOINT_AGE = "pipeline_poller_checkpoint_age_seconds"
POLLER_CHECKPOINT_AGE_HELP = "Seconds between now and the ingestion time of the poller's checkpoint."

# --- health --------------------------------------------------------------------------------------
READY = "pipeline_ready"
READY_HELP = "1 when the check answers (redis, broker, kafka), as /readyz reports it."


# =================================================================================================
# Recording helpers (one call at the point where the pipeline knows the fact)
# =================================================================================================


def count(domain: str, name: str, amount: int) -> None:
    """Mirror of one ``core.state.Counters`` increment (the summary's counters)."""
    if amount:
        COUNTER_EVENTS.labels(domain, name).inc(amount)
        if name == "bytes_downloaded":
            DOWNLOAD_BYTES.labels(domain).inc(amount)


def observe_api(endpoint: str, status: int | str | None, seconds: float) -> None:
    """One ClaimX request: ``endpoint`` as called (ids become ``{id}``), HTTP status or 'error'."""
    template = _DIGITS.sub("{id}", endpoint.split("?", 1)[0])
    API_REQUESTS.labels(template, str(status or "error")).inc()
    API_SECONDS.labels(template).observe(seconds)


def observe_ratelimit_wait(seconds: float) -> None:
    API_RATE_LIMIT_WAITS.inc()
    API_RATE_LIMIT_WAIT_SECONDS.inc(seconds)


def observe_project_cache(hit: bool) -> None:
    PROJECT_CACHE.labels("hit" if hit else "miss").inc()


_DIGITS = re.compile(r"\d+")


class FlushOutcome(Protocol):
    """What :func:`record_flushes` reads of a ``writers.flush.FlushResult``."""

    @property
    def table(self) -> Any: ...
    @property
    def rows_in(self) -> int: ...
    @property
    def rows_written(self) -> int: ...
    @property
    def seconds(self) -> float: ...
    @property
    def skipped_locked(self) -> bool: ...
    @property
    def error(self) -> str | None: ...


def record_flushes(redis_client: Any, results: Iterable[FlushOutcome]) -> None:
    """Count one round of table flushes and note, in Redis, when each table last flushed without
    error (Beat exports the age; a stopped flusher makes it grow). Never raises."""
    stamps: dict[str, float] = {}
    now = time.time()
    for result in results:
        table = str(getattr(result.table, "value", result.table))
        if result.error:
            FLUSH_RUNS.labels(table, "failed").inc()
            continue
        if result.skipped_locked:
            FLUSH_RUNS.labels(table, "locked").inc()
            continue
        stamps[table] = now
        if not result.rows_in:
            FLUSH_RUNS.labels(table, "empty").inc()
            continue
        FLUSH_RUNS.labels(table, "committed").inc()
        FLUSH_SECONDS.labels(table).observe(result.seconds)
        FLUSH_ROWS.labels(table).inc(result.rows_written)
    if stamps:
        try:
            redis_client.hset(FLUSH_SUCCESS_KEY, mapping=stamps)
        except Exception as exc:  # noqa: BLE001 - the flush itself succeeded; only the note is lost
            log.warning("could not record the flush time: %s", exc)


_REFUSALS = (  # first match wins: a blocked redirect names the rule it broke after it
    ("redirect blocked", "redirect_blocked"),
    ("must be https", "not_https"),
    ("invalid scheme", "bad_scheme"),
    ("private or loopback", "private_address"),
    ("domain not in allowlist", "host_not_allowed"),
    ("invalid url", "bad_url"),
    ("no hostname", "bad_url"),
    ("empty url", "bad_url"),
    ("file too large", "too_large"),
    ("no file extension", "extension"),
    ("file extension", "extension"),
    ("content-type", "content_type"),
    ("content-encoding", "content_encoding"),
    ("expired", "link_expired"),
    ("http 4", "http_4xx"),
)


def refusal_reasons() -> list[str]:
    """Every label :func:`refusal_reason` can return."""
    return sorted({reason for _, reason in _REFUSALS} | {"other"})


def refusal_reason(message: str) -> str:
    """A bounded label for a refused download (the message itself carries hosts and sizes)."""
    text = message.lower()
    for needle, reason in _REFUSALS:
        if needle in text:
            return reason
    return "other"


def forget_process(pid: int) -> None:
    """A process of this tree exited: its live gauges no longer count."""
    mark_process_dead(pid, str(MULTIPROC_DIR))  # type: ignore[no-untyped-call]  # prometheus_client leaves it untyped


# =================================================================================================
# The endpoint
# =================================================================================================


class Collector(Protocol):
    def collect(self) -> Iterable[Metric]: ...


#: A readiness check raises (anything) when what it checks does not answer.
Check = Callable[[], None]


def redis_check(url: str, *, timeout: float = 2.0, **options: Any) -> Check:
    """Ping the Redis at ``url`` (one client, reused); ``options`` are the TLS options of
    :func:`core.redis_client.tls_options` for a ``rediss://`` URL."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, **options)

    def _check() -> None:
        client.ping()

    return _check


#: ``scheme://user:password@`` in any URL an error names (``redis://:pw@host`` included).
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)


@dataclass
class Health:
    """Readiness checks with a short cache (probes and scrapes may come often)."""

    checks: dict[str, Check] = field(default_factory=dict)
    live: Callable[[], str | None] = lambda: None
    """Returns why the process is not alive (or None when it is)."""
    cache_seconds: float = 2.0
    _cached: tuple[float, dict[str, str]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def readiness(self) -> dict[str, str]:
        """``{check: "ok" | error text}``."""
        with self._lock:
            now = time.monotonic()
            if self._cached and now - self._cached[0] < self.cache_seconds:
                return self._cached[1]
            result: dict[str, str] = {}
            for name, check in self.checks.items():
                try:
                    check()
                    result[name] = "ok"
                except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
                    text = _USERINFO.sub(r"\1[REDACTED]@", f"{type(exc).__name__}: {exc}")
                    result[name] = sanitize_error(text) or "error"
            self._cached = (now, result)
            return result


class _ReadyCollector:
    def __init__(self, health: Health) -> None:
        self.health = health

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(READY, READY_HELP, labels=["check"])
        for name, state in self.health.readiness().items():
            family.add_metric([name], 1.0 if state == "ok" else 0.0)
        yield family


def reap_dead_processes(path: Path = MULTIPROC_DIR) -> None:
    """Drop the live-gauge files of processes in ``path`` that no longer run (a pool child that
    was recycled or killed); counters and histograms are kept so totals never go backwards."""
    pids = {p.stem.rsplit("_", 1)[-1] for p in path.glob("gauge_live*_*.db")}
    for pid in pids:
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            mark_process_dead(int(pid), str(path))  # type: ignore[no-untyped-call]  # prometheus_client leaves it untyped


def render(extra: Sequence[Collector] = ()) -> bytes:
    """The exposition of this process tree plus ``extra`` collectors."""
    reap_dead_processes()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(MULTIPROC_DIR))  # type: ignore[no-untyped-call]  # prometheus_client leaves it untyped
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)


@dataclass
class Endpoint:
    """A running metrics/health server (:func:`serve`)."""

    server: ThreadingHTTPServer
    thread: threading.Thread
    health: Health

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(
    role: str,
    address: str,
    port: int,
    *,
    health: Health,
    collectors: Sequence[Collector] = (),
) -> Endpoint | None:
    """Serve ``/metrics``, ``/healthz`` (200 while :attr:`Health.live` says alive) and ``/readyz``
    (200 when every check answers, else 503; JSON body) in a daemon thread.

    ``port`` 0 turns it off. A port already in use is logged and the process goes on without an
    endpoint: metrics are never a reason for the pipeline to stop.
    """
    if not port:
        return None
    extra: list[Collector] = [*collectors, _ReadyCollector(health)]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's naming
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    self._send(200, render(extra), CONTENT_TYPE)
                elif path == "/healthz":
                    why = health.live()
                    body = {"role": role, "live": why is None, **({"reason": why} if why else {})}
                    self._send(200 if why is None else 503, json.dumps(body).encode(), "application/json")
                elif path == "/readyz":
                    checks = health.readiness()
                    ready = all(v == "ok" for v in checks.values())
                    body = {"role": role, "ready": ready, "checks": checks}
                    self._send(200 if ready else 503, json.dumps(body).encode(), "application/json")
                else:
                    self._send(404, b"not found\n", "text/plain")
            except Exception:  # a scrape must never take the process down
                log.exception("metrics endpoint failed on %s", path)
                self._send(500, b"error\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # http.server's signature
            return  # probes every few seconds would flood the process log

    try:
        server = ThreadingHTTPServer((address, port), Handler)
    except OSError as exc:
        log.warning("%s: metrics endpoint not started on %s:%s: %s", role, address, port, exc)
        return None
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name=f"metrics-{role}", daemon=True)
    thread.start()
    log.info("%s: metrics and health on http://%s:%s/metrics", role, address, server.server_address[1])
    return Endpoint(server, thread, health)


def all_metric_names() -> set[str]:
    """Every metric family name this module declares (sample names add ``_total``, ``_bucket``…)."""
    names = {
        m._name  # prometheus_client keeps the family name here
        for m in globals().values()
        if isinstance(m, Counter | Gauge | Histogram)
    }
    return names | set(CLUSTER_GAUGES) | set(DISPATCHER_FAMILIES) | {POLLER_CHECKPOINT_AGE, READY}
