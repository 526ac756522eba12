"""pipeline.sweep restarts an attachment chain the broker lost, and only that."""

from __future__ import annotations

import json
import time

import pytest
import redis

from core.state import Counters, PendingAttachments
from domains.attachments import AttachmentJob
from domains.names import Domain
from tasks.batcher import restart_lost_chains

pytestmark = pytest.mark.integration


@pytest.fixture()
def own_broker_db() -> int:
    return 12


def _job(media_id: str) -> AttachmentJob:
    return AttachmentJob(
        domain=Domain.XACT,
        media_id=media_id,
        event_id="e-1",
        url_display="https://h/x.pdf",
        blob_path="documentsReceived/A-1/t-1/A-1_x.pdf",
        file_name="A-1_x.pdf",
        file_type="PDF",
    )


def test_sweep__restarts_a_silent_chain_skips_done_and_young_ones(own_broker: redis.Redis) -> None:
    client = own_broker
    pending, now = PendingAttachments(client), time.time()
    pending.add_many(
        {"xact:lost": _job("lost").model_dump_json(), "xact:finished": _job("finished").model_dump_json()},
        now=now - 1000,
    )
    pending.add_many({"xact:young": _job("young").model_dump_json()}, now=now)
    client.set("pipeline:done:xact:finished", "1")

    restarted = restart_lost_chains(client, pending, Counters(client), orphan_after_seconds=500, now=now)

    assert restarted == 1
    queued = [json.loads(m) for m in client.lrange("xact.download", 0, -1)]
    assert len(queued) == 1 and queued[0]["headers"]["task"] == "xact.download"
    assert "lost" in queued[0]["headers"]["argsrepr"]
    assert pending.count() == 2  # "finished" dropped; "lost" (restarted, touched) and "young" kept
    assert pending.stale(now - 500) == []  # the restarted chain gets a fresh orphan window
    assert Counters(client).get("xact")["chains_restarted"] == 1
