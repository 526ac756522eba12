"""A whole pipeline for one test module, from real parts.

Real Kafka topics (unique per harness), a Redis database of its own, the simulator, Celery
workers, Beat and the dispatcher as separate OS processes started with the same commands an
operator types. Faults are injected from outside (the simulator's control API, killing a
process by PID), never by patching the code under test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import redis
from confluent_kafka.admin import AdminClient, NewTopic

from core.settings import Settings, load_settings
from domains.names import Domain, Table
from ops.localrun import SAMPLE_HOSTS, SIM_TOKEN, free_port

ROOT = Path(__file__).resolve().parent.parent
HARNESS_DBS = range(1, 9)  # Redis databases harnesses may claim (other tests use 10, 11, 15)
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
REDIS_BASE = os.environ.get("TEST_REDIS_BASE", "redis://127.0.0.1:6379")

WORKER_GROUPS = {
    "xact": "xact.download,xact.upload,xact.write",
    "claimx-enrich": "claimx.enrich",
    "claimx-files": "claimx.download,claimx.upload,claimx.write",
    "maintenance": "pipeline.maintenance",
}


def worker_command(queues: str, *, concurrency: int, node: str) -> list[str]:
    """The operator's ``celery -A tasks worker`` serving ``queues`` as ``node``, without
    heartbeat, gossip and mingle (a test worker needs none of them and starts faster)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tasks",
        "worker",
        "-Q",
        queues,
        "-c",
        str(concurrency),
        "-n",
        node,
        "--loglevel",
        "INFO",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
    ]


def beat_command(schedule: Path) -> list[str]:
    """The operator's ``celery -A tasks beat`` keeping its schedule in ``schedule``."""
    return [sys.executable, "-m", "celery", "-A", "tasks", "beat", "-s", str(schedule), "--loglevel", "INFO"]


@contextmanager
def sample_run(
    tmp: Path,
    domain: str,
    sample: Path,
    records: int,
    *,
    extra_env: dict[str, str] | None = None,
    timeout: float = 180,
) -> Iterator[Harness]:
    """A running pipeline that has taken in ``sample`` (``records`` lines) and gone idle."""
    with _idle_run(tmp, lambda h: h.publish_file(domain, sample), records, extra_env, timeout) as harness:
        yield harness


@contextmanager
def lines_run(
    tmp: Path,
    domain: str,
    lines: list[bytes],
    *,
    extra_env: dict[str, str] | None = None,
    timeout: float = 180,
) -> Iterator[Harness]:
    """A running pipeline that has taken in ``lines`` (raw records of ``domain``) and gone idle."""
    with _idle_run(tmp, lambda h: h.publish_lines(domain, lines), len(lines), extra_env, timeout) as harness:
        yield harness


@contextmanager
def _idle_run(
    tmp: Path,
    publish: Callable[[Harness], int],
    records: int,
    extra_env: dict[str, str] | None,
    timeout: float,
) -> Iterator[Harness]:
    harness = Harness(tmp, extra_env=extra_env or {})
    harness.start_all()
    try:
        assert publish(harness) == records
        harness.wait_idle(timeout=timeout)
        yield harness
    finally:
        harness.stop_all()


def documents_received(trace_id: str, assignment_id: str, urls: list[str], *, at: str) -> bytes:
    """One raw xact ``documentsReceived`` record at ``at`` (ISO-8601) carrying ``urls``."""
    event = {
        "type": "verisk.claims.property.xn.documentsReceived",
        "version": 1,
        "utcDateTime": at,
        "traceId": trace_id,
        "data": {"assignmentId": assignment_id, "attachments": urls},
    }
    return json.dumps(event).encode()


def claim_redis_db() -> int:
    """Claim a free Redis database for one harness, so harnesses can run in parallel."""
    admin = redis.Redis.from_url(f"{REDIS_BASE}/0")
    for db in HARNESS_DBS:
        key = f"test-harness:db:{db}"
        owner = admin.get(key)
        if owner is not None and not Path(f"/proc/{int(owner)}").exists():
            admin.delete(key)  # left behind by a test process that died
        if admin.set(key, os.getpid(), nx=True, ex=3600):
            return db
    raise RuntimeError("no free Redis database for a test harness (1-8 are all claimed)")


def release_redis_db(db: int) -> None:
    redis.Redis.from_url(f"{REDIS_BASE}/0").delete(f"test-harness:db:{db}")


def create_topics(names: list[str], partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": KAFKA})
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
    )
    for future in futures.values():
        future.result(30)


@dataclass
class Harness:
    tmp: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.sim_port = free_port()
        self.sim_url = f"http://127.0.0.1:{self.sim_port}"
        self.topics = {d: f"t{tag}.{d}.events.raw" for d in ("xact", "claimx")}
        self.dlq_topics = {d: f"t{tag}.{d}.events.dlq" for d in ("xact", "claimx")}
        self.redis_db = claim_redis_db()
        self.env_vars = {
            "REDIS_URL": f"{REDIS_BASE}/{self.redis_db}",
            "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
            "KAFKA_CONSUMER_GROUP": f"dispatcher-{tag}",
            "XACT_EVENTS_TOPIC": self.topics["xact"],
            "CLAIMX_EVENTS_TOPIC": self.topics["claimx"],
            "XACT_DLQ_TOPIC": self.dlq_topics["xact"],
            "CLAIMX_DLQ_TOPIC": self.dlq_topics["claimx"],
            "LAKE_DIR": str(self.tmp / "lake"),
            "CACHE_DIR": str(self.tmp / "cache"),
            "ALLOWED_ATTACHMENT_DOMAINS": SAMPLE_HOSTS,
            "DEV_SIMULATOR_URL": self.sim_url,
            "DEV_SIMULATOR_HOSTS": SAMPLE_HOSTS,
            "CLAIMX_API_URL": f"{self.sim_url}/claimx-api.example.com/service/cxedirest",
            "CLAIMX_API_TOKEN": SIM_TOKEN,
            "FLUSH_INTERVAL_SECONDS": "1",
            "KAFKA_SESSION_TIMEOUT_MS": "10000",
            "SWEEP_INTERVAL_SECONDS": "2",
            "RETRY_DELAYS_SECONDS": "1,2,4",
            **self.extra_env,
        }
        self.settings: Settings = load_settings(**{k.lower(): v for k, v in self.env_vars.items()})
        self.redis = redis.Redis.from_url(self.env_vars["REDIS_URL"])
        self.log_dir = self.tmp / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)

    # -- processes ---------------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **self.env_vars, "PYTHONPATH": str(ROOT)}

    def start_process(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        proc = subprocess.Popen(
            cmd, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs[name] = proc
        return proc

    def start_worker(self, group: str, *, concurrency: int = 2, queues: str | None = None) -> None:
        """One worker of ``WORKER_GROUPS[group]`` (or ``queues``), process name ``worker-{group}``."""
        self.start_worker_process(
            f"worker-{group}",
            queues or WORKER_GROUPS[group],
            concurrency=concurrency,
            node=f"{group}-{uuid.uuid4().hex[:4]}@%h",
        )

    def start_worker_process(
        self, name: str, queues: str, *, concurrency: int = 2, node: str | None = None
    ) -> subprocess.Popen:
        """A worker process ``name`` serving ``queues`` (node ``{name}-xxxx@%h`` unless given)."""
        node = node or f"{name}-{uuid.uuid4().hex[:4]}@%h"
        return self.start_process(name, worker_command(queues, concurrency=concurrency, node=node))

    def pipeline(self, *args: str) -> str:
        """The stdout of ``pipeline ARGS`` (``python -m ops.cli``) run against this harness; it
        must exit 0."""
        done = subprocess.run(
            [sys.executable, "-m", "ops.cli", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start_dispatcher(self) -> None:
        self.start_process("dispatcher", [sys.executable, "-m", "ops.cli", "dispatch"])

    def start_beat(self, name: str = "beat") -> None:
        """A Beat process ``name`` with its own schedule file (two Beats may run side by side)."""
        self.start_process(name, beat_command(self.tmp / f"{name}-schedule"))

    def start_simulator(self) -> None:
        self.start_process(
            "simulator", [sys.executable, "-m", "simulator", "serve", "--port", str(self.sim_port)]
        )
        self._wait(lambda: self._http_ok(f"{self.sim_url}/_sim/health"), 20, "simulator")

    def start_all(self) -> None:
        self.redis.flushdb()
        create_topics(list(self.topics.values()) + list(self.dlq_topics.values()))
        self.start_simulator()
        for group in WORKER_GROUPS:
            self.start_worker(group)
        self.start_beat()
        self.start_dispatcher()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        os.killpg(proc.pid, sig)
        proc.wait(30)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        release_redis_db(self.redis_db)

    # -- driving -----------------------------------------------------------------------------
    def publish_file(self, domain: str, path: Path) -> int:
        from dispatcher.publisher import publish_lines, read_lines

        return publish_lines(self.settings, Domain(domain), read_lines(path))

    def publish_lines(self, domain: str, lines: list[bytes]) -> int:
        from dispatcher.publisher import publish_lines

        return publish_lines(self.settings, Domain(domain), lines)

    def wait_idle(self, timeout: float = 120.0) -> None:
        from ops.status import kafka_lag, pending_chains, queue_depths, staged, unacked

        topics = list(self.topics.values())
        quiet = 0

        def _idle() -> bool:
            nonlocal quiet
            busy = (
                abs(kafka_lag(self.settings, topics))
                + sum(queue_depths(self.redis).values())
                + unacked(self.redis)
                + staged(self.redis)
                + pending_chains(self.redis)
                + int(self.redis.zcard("pipeline:inflight:index"))  # single tasks in flight
                + int(self.redis.zcard("pipeline:schedule:due"))  # retries waiting for their time
                + len(self.redis.keys("pipeline:stage:*:batch"))
            )
            quiet = quiet + 1 if busy == 0 else 0
            return quiet >= 3

        self._wait(_idle, timeout, "pipeline idle", interval=1.0)

    def table(self, table: Table) -> pl.DataFrame:
        from writers.flush import read_table

        return read_table(self.settings, table)

    def lake_file(self, domain: str, blob_path: str) -> Path:
        return self.settings.files_root / domain / blob_path

    def lake_files(self, domain: str) -> dict[str, int]:
        root = self.settings.files_root / domain
        return (
            {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}
            if root.exists()
            else {}
        )

    def sim(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.sim_url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # loopback
            raw = resp.read()
        return json.loads(raw) if raw else None

    def counters(self, domain: str) -> dict[str, int]:
        from core.state import Counters

        return Counters(self.redis).get(domain)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.log_dir.glob("*.log"))
        )

    @staticmethod
    def _http_ok(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # loopback
                return resp.status == 200
        except OSError:
            return False

    def _wait(self, predicate, timeout: float, what: str, interval: float = 0.3) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(interval)
        raise TimeoutError(f"timed out waiting for {what}\n{self.logs()}")
