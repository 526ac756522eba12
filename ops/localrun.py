"""``pipeline run``: the whole pipeline on one machine, on the sample events (``make run``).

Starts the simulator, the dispatcher, one worker per domain queue group plus a maintenance
worker, Beat and Flower as separate processes (exactly the commands an operator would type),
publishes the samples, waits until the pipeline is idle, prints a summary and stops what it
started. The local stack (Redis, Kafka) must already run: ``make run`` starts it first.

It waits the way any script would: by running ``pipeline status --json`` (a subprocess, with the
run's environment) until ``idle`` holds for a few readings in a row.

Development settings used here (and only here): the simulator stands in for the attachment hosts
and the ClaimX API through the DEV_* settings; the production URL checks still run on every URL.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaException, TopicPartition

from core import keys
from core.redis_client import redis_client
from core.settings import Settings, load_settings
from dispatcher.publisher import publish_lines, read_lines
from domains.names import Domain
from ops.expectations import (
    actual_figures,
    claimx_figures,
    claimx_values,
    compare,
    compare_values,
    xact_figures,
    xact_values,
)
from ops.report import render_summary
from ops.status import Summary, summarize, topic_size

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SIM_TOKEN = "dGVzdDp0ZXN0"  # the simulator's fixed development token (base64 "test:test")
SAMPLE_HOSTS = "xn-exportreceiver.s3.example.com,claimx-media.s3.example.com,files.example.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dev_environment(sim_port: int, *, lake_dir: Path, group: str) -> dict[str, str]:
    sim = f"http://127.0.0.1:{sim_port}"
    return {
        "ALLOWED_ATTACHMENT_DOMAINS": SAMPLE_HOSTS,
        "DEV_SIMULATOR_URL": sim,
        "DEV_SIMULATOR_HOSTS": SAMPLE_HOSTS,
        "CLAIMX_API_URL": f"{sim}/claimx-api.example.com/service/cxedirest",
        "CLAIMX_API_TOKEN": SIM_TOKEN,
        "LAKE_DIR": str(lake_dir),
        "FLUSH_INTERVAL_SECONDS": "2",
        "KAFKA_CONSUMER_GROUP": group,
    }


@dataclass
class Processes:
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    log_dir: Path = Path(".")

    def start(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        # The child gets its own copy of the log's descriptor; ours can close at once.
        with open(self.log_dir / f"{name}.log", "wb") as log:
            self.procs[name] = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
            )

    def alive(self, name: str) -> bool:
        return name in self.procs and self.procs[name].poll() is None

    def stop_all(self, timeout: float = 30.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def reset_state(settings: Settings) -> None:
    """A fresh run: forget the previous run's ledger, counters, staged rows, letters and queues."""
    client = redis_client(settings)
    queues = [f"{d.value}.*" for d in Domain]
    for pattern in (f"{keys.PREFIX}:*", *queues, "unacked*", "_kombu*"):
        for key in client.scan_iter(match=pattern):
            client.delete(key)
    shutil.rmtree(settings.lake_dir, ignore_errors=True)


T = TypeVar("T")


def with_retries(fn: Callable[[], T], *, attempts: int = 20, delay: float = 1.0) -> T:
    """Kafka answers NOT_LEADER / COORDINATOR_LOAD_IN_PROGRESS for a while after it starts."""
    for _ in range(attempts - 1):
        try:
            return fn()
        except KafkaException:
            time.sleep(delay)
    return fn()


def skip_history(settings: Settings) -> None:
    """Point the run's consumer group at the end of the raw topics, so only this run's records
    are read (the topics keep earlier runs' records)."""
    consumer = Consumer(
        {**settings.kafka_config(), "group.id": settings.kafka_consumer_group, "enable.auto.commit": False}
    )
    try:
        offsets = []
        for domain in Domain:
            topic = settings.topic_for(domain.value)
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            for p in meta.partitions:
                _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                offsets.append(TopicPartition(topic, p, high))
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def pipeline_status(env: dict[str, str]) -> dict[str, Any] | None:
    """``pipeline status --json`` as a script runs it; ``None`` when it fails (broker restarting)."""
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "status", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        return None
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def wait_idle(env: dict[str, str], procs: Processes, timeout: float, quiet_readings: int = 3) -> bool:
    """True once ``pipeline status --json`` says ``idle`` ``quiet_readings`` times in a row (a
    single reading can fall between a task's end and the next one it enqueues); False on time-out
    or when a process of the run exited."""
    quiet = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = pipeline_status(env)
        quiet = quiet + 1 if status is not None and status["idle"] else 0
        if quiet >= quiet_readings:
            return True
        dead = [n for n in procs.procs if not procs.alive(n)]
        if dead:
            print(f"process(es) exited early: {dead}; see {procs.log_dir}", file=sys.stderr)
            return False
        time.sleep(2)
    return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:  # our own services on 127.0.0.1
            return resp.status == 200
    except OSError:
        return False


def _table_rows(settings: Settings, table: str) -> list[dict[str, Any]]:
    from writers.flush import read_table  # Delta readers load only when values are compared

    return read_table(settings, table).to_dicts()


def check_expectations(summary: Summary, domains: list[Domain], settings: Settings | None = None) -> bool:
    """Print the sample expectations next to the run's figures; True when all match.

    With ``settings``, the column values the expectation files give are compared too (read
    from the run's Delta tables)."""
    ok = True
    for domain in domains:
        expected_file = SAMPLES / "expected" / f"{domain.value}_expectations.json"
        figures = {Domain.XACT: xact_figures, Domain.CLAIMX: claimx_figures}[domain](expected_file)
        lines = compare(figures, actual_figures(domain.value, summary))
        if settings is not None:
            values = {Domain.XACT: xact_values, Domain.CLAIMX: claimx_values}[domain](expected_file)
            lines += compare_values(values, functools.partial(_table_rows, settings))
        print(f"[{domain.value}] against samples/expected/{domain.value}_expectations.json")
        print("\n".join(lines))
        ok = ok and not any(line.endswith("MISMATCH") for line in lines)
    return ok


def run(*, domains: list[Domain], keep_running: bool, timeout_seconds: float) -> int:
    sim_port, flower_port = free_port(), int(os.environ.get("FLOWER_PORT", "5555"))
    base = load_settings()
    lake = base.lake_dir.resolve()
    run_dir = ROOT / ".stack" / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **dev_environment(sim_port, lake_dir=lake, group="claims-dispatcher-run")}
    settings = load_settings(
        **{
            k.lower(): v
            for k, v in dev_environment(sim_port, lake_dir=lake, group="claims-dispatcher-run").items()
        }
    )
    reset_state(settings)
    with_retries(lambda: skip_history(settings))
    dlq_before = with_retries(
        lambda: {d: topic_size(settings, settings.dlq_topic_for(d.value)) for d in Domain}
    )

    procs = Processes(log_dir=run_dir)
    celery = [sys.executable, "-m", "celery", "-A", "tasks"]
    try:
        procs.start("simulator", [sys.executable, "-m", "simulator", "serve", "--port", str(sim_port)], env)
        procs.start(
            "worker-xact",
            celery
            + [
                "worker",
                "-Q",
                "xact.download,xact.upload,xact.write",
                "-c",
                "2",
                "-n",
                "xact@%h",
                "--loglevel",
                "INFO",
            ],
            env,
        )
        procs.start(
            "worker-claimx",
            celery
            + [
                "worker",
                "-Q",
                "claimx.enrich,claimx.download,claimx.upload,claimx.write",
                "-c",
                "2",
                "-n",
                "claimx@%h",
                "--loglevel",
                "INFO",
            ],
            {**env, "WORKER_METRICS_PORT": "9485"},  # one metrics port per worker on this host
        )
        procs.start(
            "worker-maintenance",
            celery
            + [
                "worker",
                "-Q",
                "pipeline.maintenance",
                "-c",
                "1",
                "-n",
                "maintenance@%h",
                "--loglevel",
                "INFO",
            ],
            {**env, "WORKER_METRICS_PORT": "9486"},  # scraped by monitoring/prometheus-local.yml
        )
        procs.start(
            "beat", celery + ["beat", "-s", str(run_dir / "beat-schedule"), "--loglevel", "INFO"], env
        )
        # ops.flower: basic auth from FLOWER_BASIC_AUTH; refuses an address beyond loopback without it.
        procs.start("flower", [sys.executable, "-m", "ops.flower", f"--port={flower_port}"], env)
        procs.start("dispatcher", [sys.executable, "-m", "ops.cli", "dispatch"], env)
        for _ in range(60):
            if _http_ok(f"http://127.0.0.1:{sim_port}/_sim/health"):
                break
            time.sleep(0.5)
        time.sleep(3)  # let workers connect and the dispatcher join its group
        for domain in domains:
            sample = SAMPLES / f"{domain.value}_events.jsonl"
            sent = publish_lines(settings, domain, read_lines(sample))
            print(f"published {sent} {domain.value} records from {sample.relative_to(ROOT)}")
        idle = wait_idle(env, procs, timeout_seconds)
        summary = summarize(settings)
        summary.kafka_dead_letters = {
            d.value: topic_size(settings, settings.dlq_topic_for(d.value)) - dlq_before[d] for d in Domain
        }
        flower_up = _http_ok(f"http://127.0.0.1:{flower_port}/healthcheck")
        summary.extra["unparseable records this run (Kafka DLQ)"] = summary.kafka_dead_letters
        summary.extra["flower"] = f"http://127.0.0.1:{flower_port} {'up' if flower_up else 'DOWN'}"
        summary.extra["pipeline idle"] = "yes" if idle else f"NO (timed out after {timeout_seconds:.0f} s)"
        summary.extra["process logs"] = str(run_dir)
        print(render_summary(summary))
        matches = check_expectations(summary, domains, settings)
        if keep_running:
            print("services left running; stop them with Ctrl-C")
            signal.pause()
        return 0 if idle and flower_up and matches else 1
    finally:
        procs.stop_all()
