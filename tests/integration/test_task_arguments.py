"""What Flower shows (task arguments) never holds a secret: URLs and rows travel by reference."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from domains.canvas import ParsedEvent
from domains.names import Domain
from domains.xact.canvas import parse, plan_event
from pipeline.security.urls import UrlPolicy
from pipeline.state import RowStash, UrlVault
from tasks import app
from tasks.canvas import plan_signatures

pytestmark = pytest.mark.integration
SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture()
def client() -> redis.Redis:
    r = redis.Redis.from_url("redis://127.0.0.1:6379/11")
    r.flushdb()
    return r


def test_presigned_event__signature_is_in_no_task_argument(client: redis.Redis) -> None:
    line = (SAMPLES / "xact_events.jsonl").read_bytes().splitlines()[1]  # presigned URL
    parsed: ParsedEvent = parse(line, None)
    plan = plan_event(parsed, UrlPolicy(allowed_hosts=("xn-exportreceiver.s3.example.com",)), datetime.now(UTC))
    sigs = plan_signatures(app, plan, RowStash(client))
    shown = json.dumps([s.args for s in sigs] + [s.tasks[0].args for s in sigs if hasattr(s, "tasks")])
    assert "X-Amz-Signature=0b1c" not in shown and "X-Amz-Credential=AKIA" not in shown
    assert "[REDACTED]" in shown  # the display URL is there, redacted
    # ...while the stash and vault hold the real values for the workers
    UrlVault(client).put_many({job.vault_key(): url for job, url in plan.attachments})
    job, url = plan.attachments[0]
    assert UrlVault(client).get(job.vault_key()) == url and "X-Amz-Signature=0b1c" in url
    assert plan.domain is Domain.XACT
