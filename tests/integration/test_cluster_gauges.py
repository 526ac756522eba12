"""Beat's cluster-wide gauges (``tasks.monitoring.ClusterCollector``) read from a real Redis:
queue depths, unacknowledged and scheduled tasks, open dead letters by domain/stage/category with
a zero baseline, staged rows, flush age, chains in flight and the ClaimX circuit."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from core import keys
from core import metrics as m
from core.deadletters import DeadLetterStore, LetterStatus
from core.errors import ErrorCategory
from tasks.monitoring import ClusterCollector
from tests.harness import REDIS_BASE, claim_redis_db, release_redis_db

pytestmark = pytest.mark.integration


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    db = claim_redis_db()
    r = redis.Redis.from_url(f"{REDIS_BASE}/{db}")
    r.flushdb()
    try:
        yield r
    finally:
        r.flushdb()
        release_redis_db(db)


def _unacked(eta: datetime | None) -> str:
    return json.dumps([{"headers": {"eta": eta.isoformat() if eta else None}}, "", "xact.download"])


def _gauges(client: redis.Redis) -> dict[str, dict[tuple[str, ...], float]]:
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for family in ClusterCollector(client).collect():
        out[family.name] = {tuple(s.labels[k] for k in sorted(s.labels)): s.value for s in family.samples}
    return out


def test_cluster_collector__reads_the_pipelines_state_from_redis(client: redis.Redis) -> None:
    client.rpush("xact.download", "a", "b", "c")
    client.rpush("claimx.enrich", "d")
    client.rpush("xact.upload.host.h1", "e", "f")
    now = datetime.now(UTC)
    client.hset(
        "unacked",
        mapping={
            "t1": _unacked(now + timedelta(minutes=5)),
            "t2": _unacked(now + timedelta(minutes=10)),
            "t3": _unacked(now - timedelta(minutes=1)),  # due: running, not waiting
            "t4": _unacked(None),
            "t5": "not json",
        },
    )
    letters = DeadLetterStore(client)
    common = {"payload": {}, "error": "HTTP 404", "attempts": 1}
    download = {"domain": "xact", "stage": "download", "task_name": "xact.download", **common}
    for key in ("m1", "m2"):
        letters.add(category=ErrorCategory.PERMANENT, key=key, **download)
    resolved = letters.add(category=ErrorCategory.PERMANENT, key="m3", **download)
    letters.set_status(resolved.id, LetterStatus.RESOLVED)
    letters.add(
        domain="claimx",
        stage="enrich",
        task_name="claimx.enrich",
        category=ErrorCategory.TRANSIENT,
        key="p1",
        **common,
    )
    client.rpush(f"{keys.STAGE_PREFIX}:xact_events", *["{}"] * 5)
    client.rpush(f"{keys.STAGE_PREFIX}:xact_events:batch", *["{}"] * 2)
    client.hset(m.FLUSH_SUCCESS_KEY, mapping={"xact_events": time.time() - 120, "claimx_events": time.time()})
    client.zadd(keys.PENDING_INDEX, {"xact:m9": time.time()})
    client.hset(f"{keys.BREAKER_PREFIX}:claimx_api", mapping={"state": "open", "since": 0})

    g = _gauges(client)
    assert set(g) == set(m.CLUSTER_GAUGES)
    depth = g["pipeline_queue_depth"]
    assert depth[("xact.download",)] == 3 and depth[("claimx.enrich",)] == 1
    assert depth[("xact.upload.host.h1",)] == 2 and depth[("pipeline.maintenance",)] == 0
    assert g["pipeline_queue_unacked"][()] == 5
    assert g["pipeline_retries_scheduled"][()] == 2
    open_letters = g["pipeline_dead_letters_open"]  # labels sorted: category, domain, stage
    assert open_letters[("permanent", "xact", "download")] == 2
    assert open_letters[("transient", "claimx", "enrich")] == 1
    assert open_letters[("auth", "xact", "upload")] == 0  # the zero baseline
    assert sum(open_letters.values()) == 3
    assert g["pipeline_delta_staged_rows"][("xact_events",)] == 7
    assert g["pipeline_delta_staged_rows"][("claimx_events",)] == 0
    age = g["pipeline_delta_last_flush_age_seconds"]
    assert 119 <= age[("xact_events",)] < 130 and age[("claimx_events",)] < 10
    assert g["pipeline_attachment_chains_in_flight"][()] == 1
    assert g["pipeline_claimx_circuit_state"][("claimx_api",)] == 2


def test_cluster_collector__yields_nothing_while_redis_is_away() -> None:
    gone = redis.Redis(port=1, socket_connect_timeout=0.2)
    assert list(ClusterCollector(gone).collect()) == []
