"""Issue 7 item 4: a server's ``Retry-After`` cannot push work past what the configuration allows.

An attachment host answers 429 with ``Retry-After: 86400`` (a day, far past the broker's
visibility timeout, so the retry would run twice) or with a number so large that scheduling it
overflows (which Celery used to turn into a silent reject: the work gone, no dead letter). Both
must end as a dead letter with reason ``retry_after_too_long``, through the real worker, broker
and simulator, and nothing may stay scheduled.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from core.deadletters import DeadLetterStore
from domains.ids import xact_media_id
from tests.harness import Harness
from tests.samples import SAMPLES

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

HOST = "xn-exportreceiver.s3.example.com"
WAITS = {"RA-DAY": 86400, "RA-HUGE": 10**30}


def _event(assignment: str) -> tuple[bytes, str]:
    row = json.loads((SAMPLES / "xact_events.jsonl").read_text().splitlines()[0])
    trace_id = str(uuid.uuid4())
    url = f"https://{HOST}/exports/{assignment}/{trace_id[:8]}/report.pdf"
    row["traceId"] = trace_id
    row["data"]["assignmentId"] = assignment
    row["data"]["attachments"] = [url]
    return json.dumps(row).encode(), xact_media_id(trace_id, url)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Harness, dict[str, str]]]:
    h = Harness(tmp_path_factory.mktemp("retry-after"))
    try:
        h.start_all()
        for assignment, wait in WAITS.items():
            rule = {"path_prefix": f"/{HOST}/exports/{assignment}/", "status": 429, "retry_after": wait}
            h.sim("POST", "/_sim/faults", {"rule": rule})
        events = {assignment: _event(assignment) for assignment in WAITS}
        assert h.publish_lines("xact", [line for line, _ in events.values()]) == len(events)
        h.wait_idle(timeout=90)  # a retry scheduled for later would keep the pipeline busy
        yield h, {assignment: media_id for assignment, (_, media_id) in events.items()}
    finally:
        h.stop_all()


@pytest.mark.parametrize("assignment", sorted(WAITS))
def test_a_retry_after_past_the_configured_bound_is_dead_lettered_with_that_reason(
    run: tuple[Harness, dict[str, str]], assignment: str
) -> None:
    h, media_ids = run
    letters = [
        letter for letter in DeadLetterStore(h.redis).list("xact") if letter.key == media_ids[assignment]
    ]
    assert len(letters) == 1, h.logs()
    letter = letters[0]
    assert letter.stage == "download" and letter.category == "transient"
    assert "server asked to retry after" in letter.error and "RETRY_DELAYS_SECONDS" in letter.error
    assert letter.attempts == 1  # not retried first: the wait alone decides


def test_the_bound_is_counted_and_nothing_stays_scheduled(run: tuple[Harness, dict[str, str]]) -> None:
    h, _ = run
    assert h.counters("xact").get("dead_letters_retry_after_too_long") == len(WAITS)
    assert int(h.redis.hlen("unacked")) == 0
