"""Real ``celery -A tasks worker -Q …`` processes on the real Redis broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests.harness import ROOT, worker_command

pytestmark = pytest.mark.integration
REDIS_URL = "redis://127.0.0.1:6379/10"


def _celery(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", "tasks", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture()
def worker(tmp_path: Path):
    """A worker serving only ``xact.download`` (shared cache, so no host-local upload queue)."""
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    env = {
        **os.environ,
        "REDIS_URL": REDIS_URL,
        "SHARED_CACHE": "true",
        "LAKE_DIR": str(tmp_path / "lake"),
        "CACHE_DIR": str(tmp_path / "cache"),
    }
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - the worker holds it; closed after it exits
    proc = subprocess.Popen(
        worker_command("xact.download", concurrency=1, node="only-download@%h"),
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if _celery("inspect", "ping", "-d", f"only-download@{os.uname().nodename}", env=env).returncode == 0:
            break
        time.sleep(1)
    yield env, client
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


def test_worker_with_one_queue__serves_only_that_queue(worker) -> None:
    env, client = worker
    result = _celery("inspect", "active_queues", "--json", env=env)
    assert result.returncode == 0, result.stderr
    queues = {q["name"] for node in json.loads(result.stdout).values() for q in node}
    assert queues == {"xact.download"}
    # A task for another queue stays there: nobody serves it.
    from tasks import app

    app.conf.broker_url = REDIS_URL
    with app.connection_for_write() as conn:
        app.send_task(
            "xact.write.rows",
            args=("xact_events", "pipeline:rows:none", 0),
            queue="xact.write",
            connection=conn,
        )
    time.sleep(3)
    assert client.llen("xact.write") == 1


def test_inspect_registered__task_names_say_domain_and_stage(worker) -> None:
    env, _client = worker
    result = _celery("inspect", "registered", "--json", env=env)
    assert result.returncode == 0, result.stderr
    names = {n.split(" ")[0] for node in json.loads(result.stdout).values() for n in node}
    assert {"xact.download", "xact.upload", "xact.write.rows", "claimx.enrich", "pipeline.flush"} <= names
