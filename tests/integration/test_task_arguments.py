"""What Flower shows (task arguments) never holds a secret: URLs and rows travel by reference.

The dispatcher's real enqueue path publishes to a Redis database of this test; the test reads the
messages as the broker holds them (body and the ``argsrepr`` header Flower displays).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
import redis

from core.security.urls import UrlPolicy
from core.state import PendingAttachments, RowStash, UrlVault
from domains.names import Domain
from domains.xact.canvas import parse, plan_event
from tasks import app
from tasks.canvas import enqueue_plans
from tests.samples import SAMPLES

pytestmark = pytest.mark.integration


def test_presigned_event__signature_is_in_no_published_task_message(own_broker: redis.Redis) -> None:
    client = own_broker
    line = (SAMPLES / "xact_events.jsonl").read_bytes().splitlines()[1]  # presigned URL
    plan = plan_event(
        parse(line, None), UrlPolicy(allowed_hosts=("xn-exportreceiver.s3.example.com",)), datetime.now(UTC)
    )
    sent = enqueue_plans(app, [plan], UrlVault(client), RowStash(client), PendingAttachments(client))
    messages = [m for q in ("xact.write", "xact.download") for m in client.lrange(q, 0, -1)]
    assert sent == len(messages) == 2  # the event row, the attachment chain
    shown = ""
    for raw in messages:
        message = json.loads(raw)
        shown += base64.b64decode(message["body"]).decode() + json.dumps(message["headers"])
    assert "X-Amz-Signature=0b1c" not in shown and "X-Amz-Credential=AKIA" not in shown
    assert "[REDACTED]" in shown  # the display URL is there, redacted
    job, url = plan.attachments[0]
    assert UrlVault(client).get(job.vault_key()) == url and "X-Amz-Signature=0b1c" in url
    assert plan.domain is Domain.XACT
