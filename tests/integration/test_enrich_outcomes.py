"""Issue 7 item 5: an enrich task ends in exactly one of done, retried, re-queued, dead-lettered.

Each case runs the real task (``Task.apply``: Celery's own tracer, no worker needed) in a fresh
process pointed at a private ``redis-server``, so the broker and the state of the run are that
server alone:

* a payload that is not a valid event (model validation) is dead-lettered as a permanent failure,
  not a crash that Celery would acknowledge and forget;
* with Redis gone when the unit fans out (vault, stash, publish), not even a dead letter can be
  written: the task must end in ``Reject(requeue=True)``, so the message is not acknowledged and
  comes back - for the plug-in domain's enrich (pure: Redis is first touched by the fan-out) and
  for claimx's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core.deadletters import DeadLetterStore
from domains.claimx.models import parse_claimx_record
from tests.e2e.test_faults import PrivateRedis
from tests.samples import SAMPLES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

_RUN = """
import json, sys
from tasks import app
from celery.exceptions import Reject
result = app.tasks[sys.argv[1]].apply(args=(json.loads(sys.argv[2]),))
exc = result.result if isinstance(result.result, BaseException) else None
print(json.dumps({"state": result.state, "requeue": getattr(exc, "requeue", None),
                  "error": type(exc).__name__ if exc else None}))
"""


def _apply(redis_url: str, task: str, events: list[dict]) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": redis_url,
        "DOMAIN_PLUGINS": "tests.plugin_domain",
        "CLAIMX_API_TOKEN": "test-token",
        "RETRY_DELAYS_SECONDS": "1,2",
        "WORKER_METRICS_PORT": "0",
    }
    out = subprocess.run(
        [sys.executable, "-c", _RUN, task, json.dumps(events)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    private = PrivateRedis(tmp_path / "redis")
    private.start()
    try:
        yield private
    finally:
        private.stop()


def _claimx_event() -> dict:
    line = (SAMPLES / "claimx_events.jsonl").read_bytes().splitlines()[0]
    return parse_claimx_record(line, kafka_timestamp=None).model_dump(mode="json")


def test_claimx_enrich__an_invalid_event_is_dead_lettered_not_lost(server: PrivateRedis) -> None:
    outcome = _apply(f"{server.url}/0", "claimx.enrich", [{"event_id": "not-an-event", "project_id": []}])
    assert outcome["state"] == "SUCCESS", outcome
    letters = DeadLetterStore(redis.Redis.from_url(f"{server.url}/0")).list("claimx")
    assert [(lt.key, lt.stage, lt.category) for lt in letters] == [("not-an-event", "enrich", "permanent")]
    assert "Invalid enrich event" in letters[0].error


@pytest.mark.parametrize(
    ("task", "events"),
    [
        (
            "plugin.enrich",
            [{"event_id": "e-1", "itemId": "I-1", "fileUrl": "https://files.example.com/plugin/I-1/a.pdf"}],
        ),
        ("claimx.enrich", [_claimx_event()]),
    ],
)
def test_enrich__redis_gone__the_message_is_not_acknowledged(
    server: PrivateRedis, task: str, events: list[dict]
) -> None:
    url = f"{server.url}/0"
    server.stop()  # Redis (state and broker) is gone: plugin meets it at fan-out, claimx before
    outcome = _apply(url, task, events)
    assert outcome == {"state": "REJECTED", "requeue": True, "error": "Reject"}, outcome
