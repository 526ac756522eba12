"""The shared project cache saves ClaimX API calls (DECISIONS "claimx": project cache).

The same synthetic claimx stream goes through the whole pipeline twice, with the cache on and
off (``PROJECT_CACHE_ENABLED=false``: the project is fetched again for every event); the simulator
counts every ClaimX API request. :func:`measure_api_calls` is shared with
``bench/bench_api_economy.py``, which runs the long stream.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.deadletters import DeadLetterStore
from domains.names import Table
from simulator import generate
from tests.e2e.test_faults import running_pipeline, start_pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

#: Entity tables whose content must not depend on the cache.
ENTITY_TABLES = (
    Table.CLAIMX_EVENTS,
    Table.CLAIMX_PROJECTS,
    Table.CLAIMX_CONTACTS,
    Table.CLAIMX_ATTACHMENT_METADATA,
    Table.CLAIMX_TASKS,
    Table.CLAIMX_VIDEO_COLLAB,
    Table.CLAIMX_ATTACHMENTS,
)


@dataclass
class ApiEconomy:
    """One run's ClaimX API usage and outcome."""

    cache_enabled: bool
    events: int
    api_requests: int
    by_endpoint: dict[str, int]
    seconds: float
    """Dispatcher start to idle (includes its group join, downloads and the Delta flushes)."""
    rows: dict[str, int]
    dead_letters: int
    letters: list[str] = field(default_factory=list)
    """``stage/category: error`` of each dead letter (empty on a clean run)."""
    project_updated_at: list[datetime] = field(repr=False, default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def per_event(self) -> float:
        return self.api_requests / self.events if self.events else 0.0


def _is_api(endpoint: str) -> bool:
    """Simulator counter names: ``GET /export/project/{id}`` (API) vs ``files``/``redirect``."""
    return " /" in endpoint


def measure_api_calls(
    tmp: Path,
    rows: list[dict[str, Any]],
    *,
    cache_enabled: bool,
    ttl_seconds: int = 3600,
    timeout: float = 600.0,
) -> ApiEconomy:
    """Run ``rows`` through a fresh pipeline and count the ClaimX API requests it made."""
    env = {
        "PROJECT_CACHE_ENABLED": str(cache_enabled).lower(),
        "PROJECT_CACHE_TTL_SECONDS": str(ttl_seconds),
        "RETRY_DELAYS_SECONDS": "1,1,1",
    }
    with running_pipeline(tmp, env, start=False) as (h, _broker):
        # Publish before the dispatcher starts, so both runs see the same dispatch batches (media
        # events of one project in one batch share one media call).
        start_pipeline(h, dispatcher=False)
        h.publish_lines("claimx", [json.dumps(r).encode() for r in rows])
        started_at, t0 = datetime.now(UTC), time.monotonic()
        h.start_dispatcher()
        h.wait_idle(timeout=timeout)
        seconds = time.monotonic() - t0
        stats = h.sim("GET", "/_sim/stats")
        api = {k: v for k, v in stats.items() if _is_api(k)}
        projects = h.table(Table.CLAIMX_PROJECTS)
        letters = DeadLetterStore(h.redis).list("claimx")
        return ApiEconomy(
            cache_enabled=cache_enabled,
            events=len(rows),
            api_requests=sum(api.values()),
            by_endpoint=dict(sorted(api.items())),
            seconds=seconds,
            rows={t.value: h.table(t).height for t in ENTITY_TABLES},
            dead_letters=len(letters),
            letters=[f"{x.stage}/{x.category}: {x.error}" for x in letters],
            project_updated_at=projects["updated_at"].to_list(),
            started_at=started_at,
            finished_at=datetime.now(UTC),
        )


def check_fresh(run: ApiEconomy, ttl_seconds: int) -> None:
    """No project row was written from data older than the TTL: every ``updated_at`` lies within
    this run, and the run was shorter than the TTL."""
    assert run.project_updated_at, "no project rows"
    assert (run.finished_at - run.started_at).total_seconds() < ttl_seconds
    for updated_at in run.project_updated_at:
        assert run.started_at <= updated_at <= run.finished_at, updated_at


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("RUN_SLOW") != "1",
    reason="long run (40 s): set RUN_SLOW=1; bench/bench_api_economy.py measures the same",
)
def test_project_cache__cuts_api_calls(tmp_path: Path) -> None:
    """200 mixed events over 10 projects: with the cache at most 60 % of the requests made without
    it, and the same rows in every entity table."""
    rows = generate.claimx_events(200, projects=10, seed=7)
    on = measure_api_calls(tmp_path / "on", rows, cache_enabled=True)
    off = measure_api_calls(tmp_path / "off", rows, cache_enabled=False)
    assert on.letters == off.letters == []
    assert on.rows == off.rows
    assert on.rows[Table.CLAIMX_EVENTS.value] == len(rows)
    check_fresh(on, 3600)
    ratio = on.api_requests / off.api_requests
    assert ratio <= 0.6, (on.by_endpoint, off.by_endpoint)
    # The saving is on project fetches; every other endpoint is called as often either way.
    others = {k: v for k, v in on.by_endpoint.items() if k != "GET /export/project/{id}"}
    assert others == {k: v for k, v in off.by_endpoint.items() if k != "GET /export/project/{id}"}
