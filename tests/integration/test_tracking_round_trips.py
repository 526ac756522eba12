"""Issue 9: fewer Redis round trips per stage, with the same records.

* a stage's figures (``Counters.later``) are counted in the tracking's closing round trip
  (``tasks.tracking.record_end``), not in a round trip of their own, and exactly once;
* a ``fold_start`` stage's start record rides on the stage's first round trip (``start_into``),
  so it exists before the stage's work; a stage that never sends it has it sent at its end;
* a write stage's end records ride on its closing ``MULTI`` (``end_into``): ``record_end`` sends
  nothing more for that success, and its own records when the run ends otherwise after all.
"""

from __future__ import annotations

import pytest
import redis

from core import keys
from tasks import app
from tasks.runtime import get_runtime
from tasks.tracking import end_into, record_end, record_start, start_into

pytestmark = pytest.mark.integration


@pytest.fixture()
def own_broker_db() -> int:
    return 13


def _counters(client: redis.Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(keys.counters("xact")).items()}


def test_figures_wait_for_the_end_of_the_run_then_count_once(runtime_on: redis.Redis) -> None:
    task = app.tasks["xact.upload"]
    payload = {"domain": "xact", "media_id": "m-1"}
    rt = get_runtime()

    record_start(task, "t-1", (payload,), {})
    rt.counters.later("xact", {"uploaded": 1, "bytes_uploaded": 2048})
    assert _counters(runtime_on) == {}  # nothing counted while the run goes on

    record_end(task, "t-1", (payload,), {}, "SUCCESS", scheduled=False)
    assert _counters(runtime_on) == {"uploaded": 1, "bytes_uploaded": 2048}
    assert runtime_on.hget(keys.RUNNING, "t-1") is None  # same round trip as the run record

    record_end(task, "t-1", (payload,), {}, "SUCCESS", scheduled=False)  # a second end: no recount
    assert _counters(runtime_on) == {"uploaded": 1, "bytes_uploaded": 2048}


def test_figures_left_by_a_run_whose_end_was_never_recorded_are_not_counted_by_the_next(
    runtime_on: redis.Redis,
) -> None:
    task = app.tasks["xact.upload"]
    payload = {"domain": "xact", "media_id": "m-2"}
    rt = get_runtime()
    rt.counters.later("xact", {"uploaded": 1})  # its record_end failed: the figure is dropped

    record_start(task, "t-2", (payload,), {})
    record_end(task, "t-2", (payload,), {}, "SUCCESS", scheduled=False)

    assert _counters(runtime_on) == {}


def test_a_folded_start_record_is_sent_with_the_stages_first_round_trip(runtime_on: redis.Redis) -> None:
    task = app.tasks["xact.write.rows"]
    assert task.fold_start
    rt = get_runtime()

    record_start(task, "t-3", ("xact_events", "pipeline:rows:x", 1), {})
    assert runtime_on.hget(keys.RUNNING, "t-3") is None  # not sent on its own
    assert runtime_on.get(keys.inflight("t-3")) is None

    ping = start_into(rt.redis.pipeline(transaction=False)).get("pipeline:rows:x").execute()
    assert ping[-1] is None  # the stage's own reply comes last
    assert runtime_on.hget(keys.RUNNING, "t-3") is not None  # the record exists while the stage works
    assert runtime_on.get(keys.inflight("t-3")) is not None

    record_end(task, "t-3", ("xact_events", "pipeline:rows:x", 1), {}, "SUCCESS", scheduled=False)
    assert runtime_on.hget(keys.RUNNING, "t-3") is None
    assert runtime_on.get(keys.inflight("t-3")) is None


def test_a_folded_start_the_stage_never_sent_is_sent_first_at_the_end(runtime_on: redis.Redis) -> None:
    """A stage that fails before its first round trip (say, a bad payload): the records end as if
    the start had been sent at once: a retry keeps the in-flight entry the start made."""
    task = app.tasks["xact.write.rows"]
    args = ("xact_events", "pipeline:rows:y", 1)

    record_start(task, "t-4", args, {})
    record_end(task, "t-4", args, {}, "RETRY", scheduled=True)

    assert runtime_on.hget(keys.RUNNING, "t-4") is None
    assert runtime_on.get(keys.inflight("t-4")) is not None  # registered by the start, kept for the retry
    assert runtime_on.zscore(keys.INFLIGHT_INDEX, "t-4") is not None


def test_an_unfolded_stage_sends_its_start_record_at_once(runtime_on: redis.Redis) -> None:
    task = app.tasks["xact.upload"]  # uploads can be long and touch Redis only at the end
    assert not task.fold_start
    record_start(task, "t-5", ({"domain": "xact", "media_id": "m-5"},), {})
    assert runtime_on.hget(keys.RUNNING, "t-5") is not None


def test_end_records_queued_by_the_stage_are_not_sent_again(runtime_on: redis.Redis) -> None:
    task = app.tasks["xact.write.rows"]
    args = ("xact_events", "pipeline:rows:z", 1)
    rt = get_runtime()
    record_start(task, "t-6", args, {})
    start_into(rt.redis.pipeline(transaction=False)).execute()
    pipe = rt.redis.pipeline(transaction=True)
    pipe.set("effect-of-t-6", 1)
    end_into(pipe).execute()
    assert runtime_on.hget(keys.RUNNING, "t-6") is None  # ended with the stage's effect
    assert runtime_on.get(keys.inflight("t-6")) is None

    runtime_on.hset(keys.RUNNING, "t-6", "marker")  # would be removed by a second end
    record_end(task, "t-6", args, {}, "SUCCESS", scheduled=False)
    assert runtime_on.hget(keys.RUNNING, "t-6") == b"marker"  # record_end sent nothing


def test_a_run_that_fails_after_queueing_its_end_gets_its_own_end_records(runtime_on: redis.Redis) -> None:
    task = app.tasks["xact.write.rows"]
    args = ("xact_events", "pipeline:rows:w", 1)
    rt = get_runtime()
    record_start(task, "t-7", args, {})
    start_into(rt.redis.pipeline(transaction=False)).execute()
    end_into(rt.redis.pipeline(transaction=True))  # queued, never executed (the MULTI failed)

    record_end(task, "t-7", args, {}, "RETRY", scheduled=True)

    assert runtime_on.hget(keys.RUNNING, "t-7") is None
    assert runtime_on.get(keys.inflight("t-7")) is not None  # kept for the retry, as always
