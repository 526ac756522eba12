"""``write.rows`` stages a list-format stash entry in one transaction (issue 9).

The dispatcher stashes rows as a Redis list already in the staged format
(``core.state.RowStash``); the task moves them to the table's staging list inside Redis (one
script), drops the entry, counts, and writes its end records in ONE ``MULTI``: no ``GET``, no
separate start record. An entry of the older format (one JSON array) is still staged.
"""

from __future__ import annotations

import time

import pytest
import redis

from core import keys
from core.state import PendingTasks, RowStash
from tasks import app
from tasks.runtime import get_runtime
from writers.staging import stage_key

pytestmark = pytest.mark.integration

TABLE = "xact_events"


@pytest.fixture()
def own_broker_db() -> int:
    return 9


def _calls(client: redis.Redis) -> dict[str, int]:
    return {
        name.removeprefix("cmdstat_"): stat["calls"] for name, stat in client.info("commandstats").items()
    }


def _run(rows_ref: str, count: int, task_id: str) -> int:
    result = app.tasks["xact.write.rows"].apply(args=(TABLE, rows_ref, count), task_id=task_id)
    assert result.successful(), result.traceback
    return int(result.get())


def _staged(client: redis.Redis) -> list[bytes]:
    return client.lrange(stage_key(get_runtime().stager.prefix, TABLE), 0, -1)


def _counters(client: redis.Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(keys.counters("xact")).items()}


def test_list_entry_is_staged_in_one_transaction_with_the_runs_end(runtime_on: redis.Redis) -> None:
    rows = [{"trace_id": f"t-{i}", "note": "ünïcode"} for i in range(3)]
    ref = RowStash(runtime_on).put(rows)
    assert RowStash.is_row_list(ref) and runtime_on.type(ref) == b"list"
    PendingTasks(runtime_on).add_many(
        {"w-1": "{}"}, now=time.time()
    )  # as the dispatcher registers it at publish
    runtime_on.config_resetstat()

    assert _run(ref, 3, "w-1") == 3

    calls = _calls(runtime_on)
    assert calls.get("exec") == 1 and calls.get("multi") == 1
    assert "get" not in calls and "hset" not in calls  # no stash read, no start record
    assert [line.decode() for line in _staged(runtime_on)] == [
        f'{{"trace_id":"t-{i}","note":"ünïcode"}}' for i in range(3)
    ]
    assert not runtime_on.exists(ref)
    assert _counters(runtime_on) == {"staged_xact_events": 3}
    assert runtime_on.get(keys.inflight("w-1")) is None and runtime_on.hget(keys.RUNNING, "w-1") is None
    assert runtime_on.zscore(keys.INFLIGHT_INDEX, "w-1") is None


def test_a_redelivery_stages_nothing_and_counts_it(runtime_on: redis.Redis) -> None:
    ref = RowStash(runtime_on).put([{"trace_id": "t-1"}])
    assert _run(ref, 1, "w-2") == 1
    assert _run(ref, 1, "w-2") == 0
    assert len(_staged(runtime_on)) == 1
    assert _counters(runtime_on) == {"staged_xact_events": 1, "write_rows_already_staged": 1}


def test_more_rows_than_one_script_call_takes_keep_their_order(runtime_on: redis.Redis) -> None:
    ref = RowStash(runtime_on).put([{"trace_id": f"t-{i:05d}"} for i in range(2500)])
    assert _run(ref, 2500, "w-3") == 2500
    staged = _staged(runtime_on)
    assert staged[0] == b'{"trace_id":"t-00000"}' and staged[-1] == b'{"trace_id":"t-02499"}'
    assert staged == sorted(staged) and len(set(staged)) == 2500


def test_an_entry_of_the_older_format_is_still_staged(runtime_on: redis.Redis) -> None:
    ref = keys.rows("legacy")
    runtime_on.set(ref, '[{"trace_id":"t-old","size":1.5}]')
    assert _run(ref, 1, "w-4") == 1
    assert _staged(runtime_on) == [b'{"trace_id":"t-old","size":1.5}']
    assert not runtime_on.exists(ref)


def test_stash_keeps_rows_readable_and_odd_values_as_text(runtime_on: redis.Redis) -> None:
    stash = RowStash(runtime_on)
    ref = stash.put([{"trace_id": "t-1", "tags": {"a"}, "ratio": float("nan")}])
    assert stash.get(ref) == [{"trace_id": "t-1", "tags": "{'a'}", "ratio": None}]
    empty = stash.put([])
    assert not RowStash.is_row_list(empty) and stash.get(empty) == []
    assert _run(empty, 0, "w-5") == 0 and _staged(runtime_on) == []
