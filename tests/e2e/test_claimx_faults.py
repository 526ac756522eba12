"""claimx against a misbehaving ClaimX API and media host, through the whole pipeline.

One pipeline per module (private Redis, ``RETRY_DELAYS_SECONDS=1,1,1`` so a task gets 1 + 3
attempts). Each test uses projects of its own, clears the simulator's faults and counters first and
resets the shared ``claimx_api`` breaker, so the simulator's request counts are the test's alone.

What is proven: transient API errors (429 with ``Retry-After``, 503) are retried and the rows arrive
once the fault clears; 401 is retried a bounded number of times, then dead-lettered as ``auth``;
404 is dead-lettered at once; an open breaker keeps API traffic bounded; an expired or refused
media link is refreshed from the API (at most twice) and the file arrives.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.deadletters import DeadLetter, DeadLetterStore
from domains.names import Table
from simulator import synthetic
from simulator.files import expected_bytes
from tests.e2e.test_faults import running_pipeline, slow, wait_for
from tests.harness import Harness

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

PROJECT_ENDPOINT = "GET /export/project/{id}"
MEDIA_ENDPOINT = "GET /export/project/{id}/media"
BREAKER_KEY = "pipeline:breaker:claimx_api"
MEDIA_HOST = synthetic.MEDIA_HOST
ENV = {"RETRY_DELAYS_SECONDS": "1,1,1"}
_clock = iter(range(10**6))


def event(event_type: str, project_id: int | str, **ids: Any) -> dict[str, Any]:
    """A claimx source row with an ingestion time of its own (so an event id of its own)."""
    when = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(seconds=next(_clock))
    return {
        "eventType": event_type,
        "projectId": str(project_id),
        "mediaId": ids.get("media"),
        "taskAssignmentId": ids.get("task"),
        "videoCollaborationId": ids.get("video"),
        "masterFileName": None,
        "IngestionTime": when.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }


def publish(h: Harness, rows: list[dict[str, Any]]) -> None:
    h.publish_lines("claimx", [json.dumps(r).encode() for r in rows])


def fault(h: Harness, **rule: Any) -> None:
    h.sim("POST", "/_sim/faults", {"rule": rule})


def api_stats(h: Harness) -> dict[str, int]:
    return h.sim("GET", "/_sim/stats")


def letters(h: Harness) -> list[DeadLetter]:
    return DeadLetterStore(h.redis).list("claimx")


def project_ids(h: Harness) -> set[str]:
    return set(h.table(Table.CLAIMX_PROJECTS)["project_id"].to_list())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_pipeline(tmp_path_factory.mktemp("claimx-faults"), ENV) as (h, _broker):
        yield h


@pytest.fixture
def h(run: Harness) -> Harness:
    """The module's pipeline, idle, with no faults, zeroed request counters and a closed breaker."""
    run.wait_idle(timeout=60)
    run.sim("DELETE", "/_sim/faults")
    run.sim("POST", "/_sim/stats/reset")
    run.redis.delete(BREAKER_KEY)
    DeadLetterStore(run.redis).purge("claimx")
    return run


# --- project endpoint faults -----------------------------------------------------------------------


@pytest.mark.parametrize(("status", "index"), [(429, 101), (503, 102)])
def test_project_endpoint_transient_errors__retried_and_rows_arrive_when_the_fault_clears(
    h: Harness, status: int, index: int
) -> None:
    """Two 429s (``Retry-After: 1``) or two 503s, then a healthy API: 3 requests, the project row."""
    pid = synthetic.project_id(index)
    fault(h, path_prefix=f"/export/project/{pid}", method="GET", status=status, retry_after=1, times=2)
    retried_before = h.counters("claimx").get("enrich_retried", 0)
    publish(h, [event("PROJECT_CREATED", pid)])
    h.wait_idle(timeout=60)
    assert str(pid) in project_ids(h)
    assert api_stats(h)[PROJECT_ENDPOINT] == 3
    assert h.counters("claimx")["enrich_retried"] - retried_before == 2
    assert letters(h) == []


def test_project_endpoint_401__retried_a_bounded_number_of_times_then_an_auth_dead_letter(h: Harness) -> None:
    pid = synthetic.project_id(103)
    fault(h, path_prefix=f"/export/project/{pid}", method="GET", status=401)  # until cleared
    row = event("PROJECT_CREATED", pid)
    publish(h, [row])
    h.wait_idle(timeout=60)
    time.sleep(2)  # a retry loop would show up as more requests
    assert api_stats(h)[PROJECT_ENDPOINT] == 4  # the first attempt + len(RETRY_DELAYS_SECONDS)
    [letter] = letters(h)
    assert (letter.category, letter.stage, letter.attempts) == ("auth", "enrich", 4)
    assert "401" in letter.error
    assert str(pid) not in project_ids(h)
    assert str(pid) in set(h.table(Table.CLAIMX_EVENTS)["project_id"].to_list())


def test_project_endpoint_404__one_permanent_dead_letter_without_retry(h: Harness) -> None:
    """Sample project 5099999 answers 404: one request, one letter, the event row is kept."""
    publish(h, [event("PROJECT_CREATED", 5099999)])
    h.wait_idle(timeout=60)
    assert api_stats(h)[PROJECT_ENDPOINT] == 1
    [letter] = letters(h)
    assert (letter.category, letter.stage, letter.attempts) == ("permanent", "enrich", 1)
    assert "404" in letter.error
    assert "5099999" in set(h.table(Table.CLAIMX_EVENTS)["project_id"].to_list())


# --- media links -----------------------------------------------------------------------------------


def test_expired_media_link__refreshed_from_the_api_and_the_file_arrives(h: Harness) -> None:
    """Sample media 880003 carries a link that expired in 2024 (the simulator answers 403 by date).
    Published with 880001 so both land in one dispatch batch and one ``mediaIds=880001,880003``
    call returns the expired link; the download refreshes it through ``mediaIds=880003``."""
    h.kill("dispatcher", signal.SIGTERM)  # publish first, so the two events share one batch
    refreshed_before = h.counters("claimx").get("url_refreshed", 0)
    publish(
        h,
        [
            event("PROJECT_FILE_ADDED", 5010001, media="880001"),
            event("PROJECT_FILE_ADDED", 5010001, media="880003"),
        ],
    )
    h.start_dispatcher()
    h.wait_idle(timeout=90)
    assert h.counters("claimx")["url_refreshed"] - refreshed_before == 1
    assert api_stats(h)[MEDIA_ENDPOINT] == 2  # the batch + one refresh
    requests = h.sim("GET", "/_sim/stats/files")
    assert requests[f"/{MEDIA_HOST}/projects/5010001/880003/walkthrough.mp4"] == 2  # 403, then 200
    blob = "5010001/media/880003_walkthrough.mp4"
    assert h.lake_file("claimx", blob).read_bytes() == expected_bytes(
        f"https://{MEDIA_HOST}/projects/5010001/880003/walkthrough.mp4"
    )
    inventory = {r["media_id"]: r for r in h.table(Table.CLAIMX_ATTACHMENTS).to_dicts()}
    assert inventory["880003"]["blob_path"] == blob
    assert letters(h) == []


def _synthetic_media(index: int) -> tuple[int, int, str]:
    pid, mid = synthetic.project_id(index), synthetic.media_id(index, 0)
    name = synthetic.media_item(pid, mid, size_bytes=2048)["mediaName"]
    return pid, mid, f"/{MEDIA_HOST}/synthetic/{pid}/{mid}/2048/{name}"


def test_refused_media_link__refreshed_once_and_the_file_arrives(h: Harness) -> None:
    pid, mid, path = _synthetic_media(104)
    fault(h, path_prefix=path, method="GET", status=403, times=1)
    refreshed_before = h.counters("claimx").get("url_refreshed", 0)
    publish(h, [event("PROJECT_FILE_ADDED", pid, media=str(mid))])
    h.wait_idle(timeout=60)
    assert h.counters("claimx")["url_refreshed"] - refreshed_before == 1
    assert h.sim("GET", "/_sim/stats/files")[path] == 2
    assert str(mid) in set(h.table(Table.CLAIMX_ATTACHMENTS)["media_id"].to_list())
    assert h.lake_file(
        "claimx", f"{pid}/media/{mid}_{path.rsplit('/', 1)[1]}"
    ).read_bytes() == expected_bytes(f"https://{path.lstrip('/')}")
    assert letters(h) == []


def test_media_link_refused_for_good__two_refreshes_then_a_dead_letter(h: Harness) -> None:
    """DECISIONS: at most 2 refreshes per task, then dead letter - never a refresh loop."""
    pid, mid, path = _synthetic_media(105)
    fault(h, path_prefix=path, method="GET", status=403)  # until cleared
    publish(h, [event("PROJECT_FILE_ADDED", pid, media=str(mid))])
    h.wait_idle(timeout=60)
    time.sleep(2)
    assert h.sim("GET", "/_sim/stats/files")[path] == 3  # the link + 2 refreshed links
    assert api_stats(h)[MEDIA_ENDPOINT] == 3  # the enrich call + 2 refreshes
    [letter] = letters(h)
    assert (letter.category, letter.stage, letter.key) == ("permanent", "download", str(mid))
    assert str(mid) not in set(h.table(Table.CLAIMX_ATTACHMENTS)["media_id"].to_list())


def test_duplicate_media_events_downloading_at_once__one_file_one_row_no_dead_letter(h: Harness) -> None:
    """Three ``PROJECT_FILE_ADDED`` events for one media id (a source re-sending the event: each has
    its own ingestion time, so its own event id) start three download chains for the same media;
    with the file served slowly they overlap. Exactly-once in effect: one exact file, one inventory
    row, and no dead letter (the work succeeded)."""
    pid, mid, path = _synthetic_media(106)
    fault(h, path_prefix=path, method="GET", delay_seconds=1.0)
    publish(h, [event("PROJECT_FILE_ADDED", pid, media=str(mid)) for _ in range(3)])
    h.wait_idle(timeout=60)
    assert h.sim("GET", "/_sim/stats/files")[path] >= 2, "the downloads did not overlap"
    assert h.lake_file(
        "claimx", f"{pid}/media/{mid}_{path.rsplit('/', 1)[1]}"
    ).read_bytes() == expected_bytes(f"https://{path.lstrip('/')}")
    inventory = h.table(Table.CLAIMX_ATTACHMENTS)
    assert inventory.filter(inventory["media_id"] == str(mid)).height == 1
    assert [f"{x.stage}/{x.category}: {x.error}" for x in letters(h)] == []


# --- the circuit breaker (last: it leaves tasks waiting for the breaker) ---------------------------


def _breaker_state(h: Harness) -> str | None:
    value = h.redis.hget(BREAKER_KEY, "state")
    return value.decode() if value else None


def _open_the_breaker(h: Harness, first_index: int, events: int = 8) -> list[int]:
    """503 on every project call while ``events`` project events arrive; returns their project ids.

    Unprotected, each event would make 4 requests (1 + 3 retries) within ~4 s. The breaker opens
    after 5 counted failures; afterwards tasks are re-queued for its open time without a request.
    """
    pids = [synthetic.project_id(first_index + i) for i in range(events)]
    fault(h, path_prefix="/export/project/", method="GET", status=503)
    publish(h, [event("PROJECT_CREATED", pid) for pid in pids])
    wait_for(h, lambda: _breaker_state(h) == "open", 30, "the breaker to open")
    time.sleep(10)  # long enough for every retry an unprotected client would make
    calls = api_stats(h).get(PROJECT_ENDPOINT, 0)
    assert 5 <= calls <= 5 + 2, calls  # threshold + calls already in flight (2 enrich processes)
    assert _breaker_state(h) == "open"
    assert h.counters("claimx").get("enrich_requeued_circuit_open", 0) >= 1
    assert letters(h) == []  # waiting for the breaker is not failing
    return pids


def test_open_circuit__api_requests_stay_bounded_while_the_api_is_down(h: Harness) -> None:
    _open_the_breaker(h, 200)


@slow
def test_open_circuit__work_resumes_after_the_open_time_once_the_api_recovers(tmp_path: Path) -> None:
    """Long variant (own pipeline): after the 60 s open time a half-open trial succeeds, the breaker
    closes and every waiting event is enriched; nothing is dead-lettered."""
    with running_pipeline(tmp_path, ENV) as (h, _broker):
        pids = _open_the_breaker(h, 300)
        h.sim("DELETE", "/_sim/faults")
        wait_for(h, lambda: {str(p) for p in pids} <= project_ids(h), 180, "every project row", interval=2)
        assert _breaker_state(h) is None  # closed (the hash is deleted on close)
        assert letters(h) == []
