"""``pipeline run``: the whole pipeline on one machine, on the sample events (``make run``).

Starts the simulator, the dispatcher, one worker per domain queue group plus a maintenance
worker, Beat and Flower as separate processes (exactly the commands an operator would type),
publishes the samples, waits until the pipeline is idle, prints a summary and stops what it
started. The local stack (Redis, Kafka) must already run: ``make run`` starts it first.

Development settings used here (and only here): the simulator stands in for the attachment hosts
and the ClaimX API through the DEV_* settings; the production URL checks still run on every URL.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import redis

from core.settings import Settings, load_settings
from domains.names import Domain

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
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    log_dir: Path = Path(".")

    def start(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
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
    import shutil

    client = redis.Redis.from_url(settings.redis_url)
    for pattern in ("pipeline:*", "xact.*", "claimx.*", "unacked*", "_kombu*"):
        for key in client.scan_iter(match=pattern):
            client.delete(key)
    shutil.rmtree(settings.lake_dir, ignore_errors=True)


def with_retries(fn, *, attempts: int = 20, delay: float = 1.0):  # noqa: ANN001, ANN201
    """Kafka answers NOT_LEADER / COORDINATOR_LOAD_IN_PROGRESS for a while after it starts."""
    from confluent_kafka import KafkaException

    for attempt in range(attempts):
        try:
            return fn()
        except KafkaException:
            if attempt == attempts - 1:
                raise
            time.sleep(delay)
    return None


def skip_history(settings: Settings) -> None:
    """Point the run's consumer group at the end of the raw topics, so only this run's records
    are read (the topics keep earlier runs' records)."""
    from confluent_kafka import Consumer, TopicPartition

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


def wait_idle(settings: Settings, procs: Processes, timeout: float) -> bool:
    from ops.status import kafka_lag, pending_chains, queue_depths, staged, unacked

    client = redis.Redis.from_url(settings.redis_url)
    topics = [settings.topic_for(d.value) for d in Domain]
    quiet = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = (
            abs(kafka_lag(settings, topics))
            + sum(queue_depths(client).values())
            + unacked(client)
            + staged(client)
            + pending_chains(client)
            + int(bool(client.keys("pipeline:stage:*:batch")))
        )
        quiet = quiet + 1 if busy == 0 else 0
        if quiet >= 3:
            return True
        dead = [n for n in procs.procs if not procs.alive(n)]
        if dead:
            print(f"process(es) exited early: {dead}; see {procs.log_dir}", file=sys.stderr)
            return False
        time.sleep(2)
    return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 - loopback only
            return resp.status == 200
    except OSError:
        return False


def check_expectations(summary, domains: list[Domain]) -> bool:  # noqa: ANN001 - status.Summary
    """Print the sample expectations next to the run's figures; True when all match."""
    from ops.expectations import actual_figures, claimx_figures, compare, xact_figures

    ok = True
    for domain in domains:
        figures = {Domain.XACT: xact_figures, Domain.CLAIMX: claimx_figures}[domain](
            SAMPLES / "expected" / f"{domain.value}_expectations.json"
        )
        lines = compare(figures, actual_figures(domain.value, summary))
        print(f"[{domain.value}] against samples/expected/{domain.value}_expectations.json")
        print("\n".join(lines))
        ok = ok and not any(line.endswith("MISMATCH") for line in lines)
    return ok


def run(*, domains: list[Domain], keep_running: bool, timeout_seconds: float) -> int:
    from dispatcher.publisher import publish_lines, read_lines
    from ops.report import render_summary
    from ops.status import summarize, topic_size

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
            env,
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
            env,
        )
        procs.start(
            "beat", celery + ["beat", "-s", str(run_dir / "beat-schedule"), "--loglevel", "INFO"], env
        )
        procs.start("flower", celery + ["flower", f"--port={flower_port}", "--address=127.0.0.1"], env)
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
        idle = wait_idle(settings, procs, timeout_seconds)
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
        matches = check_expectations(summary, domains)
        if keep_running:
            print("services left running; stop them with Ctrl-C")
            signal.pause()
        return 0 if idle and flower_up and matches else 1
    finally:
        procs.stop_all()
