"""Health endpoints of a real worker and a real dispatcher: ready while their broker, Redis and
(dispatcher) Kafka answer, unready while Redis is stopped, ready again when it returns, alive
throughout. Redis here is a private ``redis-server`` on a port of its own (never the shared one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.redis_client import redis_client
from core.settings import Settings, load_settings
from ops.localrun import free_port
from ops.status import health_facts
from tests.harness import KAFKA, ROOT, create_topics, worker_command
from tests.integration.dispatch_rig import PrivateServer

pytestmark = pytest.mark.integration


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise TimeoutError(f"timed out waiting for {what}")


def _get(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:  # loopback
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return 0, {}


@dataclass
class Processes:
    redis: PrivateServer
    ports: dict[str, int]
    procs: dict[str, subprocess.Popen]
    logs: Path
    settings: Settings

    def log_tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in self.logs.glob("*.log")
        )


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    tmp = tmp_path_factory.mktemp("health")
    redis_server = PrivateServer(tmp / "redis")
    redis_server.start()
    tag = uuid.uuid4().hex[:8]
    topics = {d: f"health-{tag}.{d}.events.raw" for d in ("xact", "claimx")}
    create_topics(list(topics.values()), partitions=1)
    ports = {"worker": free_port(), "dispatcher": free_port()}
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/0",
        "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
        "KAFKA_CONSUMER_GROUP": f"health-{tag}",
        "XACT_EVENTS_TOPIC": topics["xact"],
        "CLAIMX_EVENTS_TOPIC": topics["claimx"],
        "LAKE_DIR": str(tmp / "lake"),
        "WORKER_METRICS_PORT": str(ports["worker"]),
        "DISPATCHER_METRICS_PORT": str(ports["dispatcher"]),
    }
    commands = {
        "worker": worker_command("xact.download", concurrency=1, node=f"health-{tag}@%h"),
        "dispatcher": [sys.executable, "-m", "ops.cli", "dispatch"],
    }
    procs = {}
    for name, cmd in commands.items():
        log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - lives with the process
        procs[name] = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        settings = load_settings(
            redis_url=env["REDIS_URL"],
            kafka_bootstrap_servers=KAFKA,
            worker_metrics_port=ports["worker"],
            dispatcher_metrics_port=ports["dispatcher"],
            beat_metrics_port=0,
            poller_metrics_port=0,
        )
        yield Processes(redis_server, ports, procs, tmp, settings)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis_server.stop()


def test_worker_and_dispatcher__unready_without_redis_and_ready_again_when_it_returns(
    processes: Processes,
) -> None:
    def _all(status: int) -> bool:
        return all(_get(port, "/readyz")[0] == status for port in processes.ports.values())

    try:
        _wait(lambda: _all(200), 90, "worker and dispatcher ready")
    except TimeoutError:
        pytest.fail(f"not ready:\n{processes.log_tail()}")
    status, body = _get(processes.ports["dispatcher"], "/readyz")
    assert body["checks"] == {"broker": "ok", "redis": "ok", "kafka": "ok"}
    facts = health_facts(processes.settings, redis_client(processes.settings))  # `pipeline status`
    assert facts == {"redis": "ok", "kafka": "ok", "dispatcher": "ready", "worker": "ready"}

    processes.redis.stop()
    _wait(lambda: _all(503), 30, "unready without redis")
    for port in processes.ports.values():
        status, body = _get(port, "/readyz")
        assert status == 503 and body["ready"] is False
        assert body["checks"]["redis"] != "ok" and body["checks"]["broker"] != "ok"
        assert _get(port, "/healthz")[0] == 200  # alive: an orchestrator must not restart it for this
    assert _get(processes.ports["dispatcher"], "/readyz")[1]["checks"]["kafka"] == "ok"
    facts = health_facts(processes.settings, redis_client(processes.settings, socket_timeout=2))
    assert facts["redis"].startswith("no answer") and facts["kafka"] == "ok"
    assert facts["worker"].startswith("not ready (broker: ") and "redis: " in facts["worker"]
    assert facts["dispatcher"].startswith("not ready (") and "kafka" not in facts["dispatcher"]

    processes.redis.start()
    try:
        _wait(lambda: _all(200), 60, "ready again")
    except TimeoutError:
        pytest.fail(f"not ready again:\n{processes.log_tail()}")
    assert all(proc.poll() is None for proc in processes.procs.values())
