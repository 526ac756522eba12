"""Exactly-once flush of staged rows into Delta tables on disk, against a real Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
import redis
from deltalake import DeltaTable, Transaction
from deltalake.exceptions import CommitFailedError

from core.errors import PipelineError, TransientError
from core.settings import Settings, load_settings
from domains.names import Table
from writers.coerce import build_batch
from writers.flush import LOCK_TIMEOUT_SECONDS, flush_all, flush_table, read_table
from writers.lock import LockKeeper
from writers.merge import merge_batch
from writers.staging import Stager, batch_key, batch_version_key, encode_row, lock_key, stage_key, version_key
from writers.tables import TABLES, app_id, table_uri

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(lake_dir=tmp_path / "lake")


def _events(*trace_ids: str, **extra: object) -> list[dict[str, object]]:
    return [
        {
            "trace_id": t,
            "type": "verisk.claims.property.xn.documentsReceived",
            "ingested_at": "2026-01-05T14:02:11.120Z",
            **extra,
        }
        for t in trace_ids
    ]


def _flush(settings: Settings, client: redis.Redis, prefix: str, table: Table, **kw: object):
    return flush_table(settings, client, table, prefix=prefix, **kw)  # type: ignore[arg-type]  # test knobs pass through


def test_flush__writes_staged_rows_once_and_records_the_batch_version(
    settings: Settings, redis_client: redis.Redis, prefix: str
) -> None:
    stager = Stager(redis_client, prefix)
    assert stager.stage(Table.XACT_EVENTS, _events("t1", "t2", "t3")) == 3
    result = _flush(settings, redis_client, prefix, Table.XACT_EVENTS)
    assert (result.rows_in, result.rows_written, result.version, result.skipped_committed) == (3, 3, 1, False)
    frame = read_table(settings, Table.XACT_EVENTS)
    assert sorted(frame["trace_id"].to_list()) == ["t1", "t2", "t3"]
    assert frame.columns == TABLES[Table.XACT_EVENTS].schema.names
    assert stager.pending(Table.XACT_EVENTS) == 0 and stager.in_flight(Table.XACT_EVENTS) == 0
    uri = table_uri(settings, Table.XACT_EVENTS)
    assert DeltaTable(uri).transaction_version(app_id(Table.XACT_EVENTS)) == 1
    assert DeltaTable(uri).metadata().partition_columns == ["event_date"]


def test_flush__batch_committed_before_a_crash_is_dropped_not_written_twice(
    settings: Settings, redis_client: redis.Redis, prefix: str
) -> None:
    Stager(redis_client, prefix).stage(Table.XACT_EVENTS, _events("t1", "t2"))
    first = _flush(settings, redis_client, prefix, Table.XACT_EVENTS)
    table_version = DeltaTable(table_uri(settings, Table.XACT_EVENTS)).version()
    # The state a flusher leaves when it dies between the Delta commit and deleting its batch:
    redis_client.rpush(batch_key(prefix, Table.XACT_EVENTS), *['{"trace_id":"t1"}', '{"trace_id":"t-new"}'])
    redis_client.set(batch_version_key(prefix, Table.XACT_EVENTS), first.version)

    again = _flush(settings, redis_client, prefix, Table.XACT_EVENTS)

    assert again.skipped_committed and again.rows_written == 0 and again.version == first.version
    assert read_table(settings, Table.XACT_EVENTS).height == 2
    assert DeltaTable(table_uri(settings, Table.XACT_EVENTS)).version() == table_version
    assert not redis_client.exists(
        batch_key(prefix, Table.XACT_EVENTS), batch_version_key(prefix, Table.XACT_EVENTS)
    )


def test_flush__batch_claimed_but_not_committed_is_written_under_its_version(
    settings: Settings, redis_client: redis.Redis, prefix: str
) -> None:
    stager = Stager(redis_client, prefix)
    stager.stage(Table.XACT_EVENTS, _events("later"))
    # A flusher claimed version 7 and died before its commit.
    redis_client.rpush(batch_key(prefix, Table.XACT_EVENTS), '{"trace_id":"claimed"}')
    redis_client.set(batch_version_key(prefix, Table.XACT_EVENTS), 7)
    redis_client.set(version_key(prefix, Table.XACT_EVENTS), 7)

    resumed = _flush(settings, redis_client, prefix, Table.XACT_EVENTS)
    assert (resumed.version, resumed.rows_written, resumed.skipped_committed) == (7, 1, False)
    assert read_table(settings, Table.XACT_EVENTS)["trace_id"].to_list() == ["claimed"]
    assert stager.pending(Table.XACT_EVENTS) == 1, "rows staged after the claim wait for the next flush"

    following = _flush(settings, redis_client, prefix, Table.XACT_EVENTS)
    assert following.version == 8 and following.rows_written == 1
    assert (
        DeltaTable(table_uri(settings, Table.XACT_EVENTS)).transaction_version(app_id(Table.XACT_EVENTS)) == 8
    )


def test_flush__redis_that_lost_its_version_counter_still_writes_new_rows(
    settings: Settings, redis_client: redis.Redis, prefix: str
) -> None:
    stager = Stager(redis_client, prefix)
    for trace in ("a", "b", "c"):
        stager.stage(Table.XACT_EVENTS, _events(trace))
        _flush(settings, redis_client, prefix, Table.XACT_EVENTS)
    redis_client.delete(version_key(prefix, Table.XACT_EVENTS))  # e.g. Redis restored from an old snapshot

    stager.stage(Table.XACT_EVENTS, _events("d"))
    result = _flush(settings, redis_client, prefix, Table.XACT_EVENTS)
    assert result.version == 4 and result.rows_written == 1 and not result.skipped_committed
    assert sorted(read_table(settings, Table.XACT_EVENTS)["trace_id"].to_list()) == ["a", "b", "c", "d"]


def test_flush__insert_new_never_updates_an_existing_key(
    settings: Settings, redis_client: redis.Redis, prefix: str
) -> None:
    stager = Stager(redis_client, prefix)
    stager.stage(Table.XACT_EVENTS, _events("t1", note="first") + _events("t1", note="dup in batch"))
    _flush(settings, redis_client, prefix, Table.XACT_EVENTS)
    stager.stage(Table.XACT_EVENTS, _events("t1", note="redelivered") + _events("t2"))
    result = _flush(settings, redis_client, prefix, Table.XACT_EVENTS)
    assert result.rows_written == 1
    frame = read_table(settings, Table.XACT_EVENTS).sort("trace_id")
    assert frame.select("trace_id", "note").rows() == [("t1", "first"), ("t2", None)]


def test_flush__upsert_never_overwrites_with_null_and_keeps_created_at(
    settings: Settings, redis_client: redis.Redis, prefix: str
) -> None:
    stager = Stager(redis_client, prefix)
    stager.stage(
        Table.CLAIMX_PROJECTS,
        [
            {
                "project_id": "5010001",
                "status": "Active",
                "city": "Sampleville",
                "year_built": "1987",
                "created_at": "2026-01-05T17:01:11Z",
            }
        ],
    )
    _flush(settings, redis_client, prefix, Table.CLAIMX_PROJECTS)
    # A flag-only row (XA-linking event) carries only some columns:
    stager.stage(
        Table.CLAIMX_PROJECTS,
        [
            {
                "project_id": "5010001",
                "xa_autolink_fail": "true",
                "xa_autolink_fail_at": "2026-01-06T09:00:00Z",
                "created_at": "2026-01-06T09:00:00Z",
            }
        ],
    )
    result = _flush(settings, redis_client, prefix, Table.CLAIMX_PROJECTS)
    assert result.rows_written == 1
    [row] = read_table(settings, Table.CLAIMX_PROJECTS).to_dicts()
    assert (row["status"], row["city"], row["year_built"], row["xa_autolink_fail"]) == (
        "Active",
        "Sampleville",
        1987,
        True,
    )
    assert row["created_at"].isoformat() == "2026-01-05T17:01:11+00:00"
    assert row["updated_at"] > row["created_at"]


def test_flush__templates_update_only_when_modified_date_changes(
    settings: Settings, redis_client: redis.Redis, prefix: str
) -> None:
    stager = Stager(redis_client, prefix)

    def stage_and_flush(name: str, modified: str | None) -> int:
        stager.stage(
            Table.CLAIMX_TASK_TEMPLATES, [{"task_id": 45001, "name": name, "modified_date": modified}]
        )
        return _flush(settings, redis_client, prefix, Table.CLAIMX_TASK_TEMPLATES).rows_written

    assert stage_and_flush("v1", "2025-06-01T00:00:00") == 1
    assert stage_and_flush("v1-same-date", "2025-06-01T00:00:00") == 0
    assert read_table(settings, Table.CLAIMX_TASK_TEMPLATES)["name"].to_list() == ["v1"]
    assert stage_and_flush("v2", "2025-07-01T00:00:00") == 1
    assert read_table(settings, Table.CLAIMX_TASK_TEMPLATES)["name"].to_list() == ["v2"]


def test_flush__composite_key_with_null_part_stays_one_row(
    settings: Settings, redis_client: redis.Redis, prefix: str
) -> None:
    stager = Stager(redis_client, prefix)
    contact = {"project_id": "5010001", "contact_email": None, "contact_type": "POLICYHOLDER"}
    stager.stage(Table.CLAIMX_CONTACTS, [{**contact, "first_name": "Jordan"}])
    _flush(settings, redis_client, prefix, Table.CLAIMX_CONTACTS)
    stager.stage(
        Table.CLAIMX_CONTACTS,
        [{**contact, "last_name": "Testperson"}, {**contact, "contact_type": "CLAIM_REP"}],
    )
    _flush(settings, redis_client, prefix, Table.CLAIMX_CONTACTS)
    frame = read_table(settings, Table.CLAIMX_CONTACTS).sort("contact_type", descending=True)
    assert frame.select("contact_type", "first_name", "last_name").rows() == [
        ("POLICYHOLDER", "Jordan", "Testperson"),
        ("CLAIM_REP", None, None),
    ]


def test_flush__max_rows_takes_the_oldest_rows_first(
    settings: Settings, redis_client: redis.Redis, prefix: str
) -> None:
    stager = Stager(redis_client, prefix)
    stager.stage(Table.XACT_EVENTS, _events(*[f"t{i:02d}" for i in range(25)]))
    result = _flush(settings, redis_client, prefix, Table.XACT_EVENTS, max_rows=10)
    assert result.rows_written == 10 and stager.pending(Table.XACT_EVENTS) == 15
    assert sorted(read_table(settings, Table.XACT_EVENTS)["trace_id"].to_list()) == [
        f"t{i:02d}" for i in range(10)
    ]
    assert redis_client.lindex(stage_key(prefix, Table.XACT_EVENTS), 0).decode().find('"t10"') > 0


def test_flush__held_lock_means_skip_without_touching_anything(
    settings: Settings, redis_client: redis.Redis, prefix: str
) -> None:
    stager = Stager(redis_client, prefix)
    stager.stage(Table.XACT_EVENTS, _events("t1"))
    other = redis_client.lock(lock_key(prefix, Table.XACT_EVENTS), timeout=LOCK_TIMEOUT_SECONDS)
    assert other.acquire(blocking=False)
    try:
        result = _flush(settings, redis_client, prefix, Table.XACT_EVENTS)
    finally:
        other.release()
    assert result.skipped_locked and result.rows_written == 0
    assert stager.pending(Table.XACT_EVENTS) == 1
    assert not DeltaTable.is_deltatable(table_uri(settings, Table.XACT_EVENTS))


def test_flush__concurrent_stagers_and_flushers_write_every_key_exactly_once(
    settings: Settings, redis_client: redis.Redis, prefix: str
) -> None:
    keys_per_stager, stagers = 200, 4
    errors: list[BaseException] = []
    done = threading.Event()

    def stage(worker: int) -> None:
        stager = Stager(redis.Redis.from_url(settings.redis_url), prefix)
        for i in range(keys_per_stager):  # every key staged twice: a redelivered write task
            rows = [{"media_id": f"m{worker}-{i}", "bytes_downloaded": i}]
            stager.stage(Table.XACT_ATTACHMENTS, rows + rows)

    def flush() -> None:
        client = redis.Redis.from_url(settings.redis_url)
        try:
            while not done.is_set():
                _flush(settings, client, prefix, Table.XACT_ATTACHMENTS, max_rows=150)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    flushers = [threading.Thread(target=flush) for _ in range(3)]
    staging = [threading.Thread(target=stage, args=(w,)) for w in range(stagers)]
    for thread in flushers + staging:
        thread.start()
    for thread in staging:
        thread.join()
    done.set()
    for thread in flushers:
        thread.join()
    while _flush(settings, redis_client, prefix, Table.XACT_ATTACHMENTS).rows_in:
        pass

    assert not errors
    frame = read_table(settings, Table.XACT_ATTACHMENTS)
    assert frame.height == keys_per_stager * stagers
    assert frame["media_id"].n_unique() == frame.height


def test_flush__unreadable_and_keyless_rows_do_not_block_the_table(
    settings: Settings, redis_client: redis.Redis, prefix: str
) -> None:
    redis_client.rpush(
        stage_key(prefix, Table.XACT_EVENTS),
        "{truncated",
        '{"note":"no key"}',
        '{"trace_id":"ok","ingested_at":"garbage-time"}',
    )
    result = _flush(settings, redis_client, prefix, Table.XACT_EVENTS)
    assert (result.rows_in, result.rows_written) == (3, 1)
    [row] = read_table(settings, Table.XACT_EVENTS).to_dicts()
    assert row["trace_id"] == "ok" and row["ingested_at"] is None and row["event_date"] is not None
    assert not redis_client.exists(batch_key(prefix, Table.XACT_EVENTS))


def test_flush_all__creates_every_table_with_its_schema(
    settings: Settings, redis_client: redis.Redis, prefix: str
) -> None:
    stager = Stager(redis_client, prefix)
    for table, spec in TABLES.items():
        stager.stage(table, [{key: "1" for key in spec.keys}])
    results = {r.table: r for r in flush_all(settings, redis_client, prefix=prefix)}
    assert set(results) == set(Table)
    for table, spec in TABLES.items():
        assert results[table].rows_written == 1 and results[table].error is None, table
        frame = read_table(settings, table)
        expected = pl.from_arrow(spec.schema.empty_table())
        assert frame.schema == expected.schema, table
        assert DeltaTable(table_uri(settings, table)).metadata().partition_columns == list(spec.partition_by)
    again = flush_all(settings, redis_client, prefix=prefix)
    assert all(r.rows_in == 0 and r.version is None for r in again)


def test_read_table__missing_table_is_empty_with_the_schema(settings: Settings) -> None:
    frame = read_table(settings, Table.CLAIMX_VIDEO_COLLAB)
    assert frame.height == 0
    assert frame.columns == TABLES[Table.CLAIMX_VIDEO_COLLAB].schema.names


def test_flush__table_created_by_an_older_schema_gains_new_columns(
    settings: Settings, redis_client: redis.Redis, prefix: str
) -> None:
    uri = table_uri(settings, Table.CLAIMX_ATTACHMENTS)
    old = pa.schema([("media_id", pa.string()), ("project_id", pa.string())])
    DeltaTable.create(uri, schema=old)
    Stager(redis_client, prefix).stage(
        Table.CLAIMX_ATTACHMENTS,
        [
            {
                "media_id": "880001",
                "project_id": "5010001",
                "bytes_downloaded": 2048,
                "content_type": "image/jpeg",
            }
        ],
    )
    assert _flush(settings, redis_client, prefix, Table.CLAIMX_ATTACHMENTS).rows_written == 1
    [row] = read_table(settings, Table.CLAIMX_ATTACHMENTS).to_dicts()
    assert (row["bytes_downloaded"], row["content_type"]) == (2048, "image/jpeg")


_CHILD_FLUSH = """
import sys
import redis
from domains.names import Table
from core.settings import load_settings
from writers.flush import flush_table
settings = load_settings(lake_dir=sys.argv[1])
print("start", flush=True)
flush_table(settings, redis.Redis.from_url(settings.redis_url), Table.XACT_ATTACHMENTS,
            prefix=sys.argv[2], lock_timeout_seconds=1.0)
"""


@pytest.mark.parametrize("kill_after_seconds", [0.0, 0.05, 0.1, 0.125, 0.15, 0.175, 0.2, 0.4])
def test_flush__flusher_killed_at_any_moment_loses_and_duplicates_nothing(
    settings: Settings, redis_client: redis.Redis, prefix: str, kill_after_seconds: float
) -> None:
    """SIGKILL a real flusher process mid-way; its lock expires and the next flush finishes the job.

    The delays land (on a 2-core machine) before the claim, between claim and commit, between
    commit and clearing the batch, and after the flush; the invariant holds for all of them.
    """
    stager = Stager(redis_client, prefix)
    first = [{"media_id": f"a{i}", "bytes_downloaded": i} for i in range(20_000)]
    stager.stage(Table.XACT_ATTACHMENTS, first)
    _flush(settings, redis_client, prefix, Table.XACT_ATTACHMENTS)  # a non-empty table makes the merge slower
    stager.stage(
        Table.XACT_ATTACHMENTS, [{"media_id": f"b{i}", "bytes_downloaded": i} for i in range(50_000)]
    )
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD_FLUSH, str(settings.lake_dir), prefix],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        env={**os.environ, "REDIS_URL": settings.redis_url},
    )
    assert child.stdout is not None and child.stdout.readline().strip() == b"start"
    time.sleep(kill_after_seconds)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)

    deadline = time.monotonic() + 10
    while True:
        result = _flush(settings, redis_client, prefix, Table.XACT_ATTACHMENTS)
        if not result.skipped_locked and result.rows_in == 0:
            break
        assert time.monotonic() < deadline, "the dead flusher's lock never expired"
        time.sleep(0.2)
    frame = read_table(settings, Table.XACT_ATTACHMENTS)
    assert frame.height == 70_000 and frame["media_id"].n_unique() == 70_000


def test_lock_keeper__renews_while_running_and_refuses_a_lost_lock(
    redis_client: redis.Redis, prefix: str
) -> None:
    lock = redis_client.lock(f"{prefix}:lock", timeout=0.3, thread_local=False)
    assert lock.acquire(blocking=False)
    keeper = LockKeeper(lock, 0.1)
    time.sleep(0.8)
    assert lock.owned(), "the keeper kept a 0.3 s lock alive for 0.8 s"
    keeper.confirm("test")
    redis_client.delete(f"{prefix}:lock")  # expired and taken over in the meantime
    time.sleep(0.25)
    with pytest.raises(TransientError):
        keeper.confirm("test")
    keeper.stop()


_CHILD_STALLING_FLUSH = """
import sys
import redis
from domains.names import Table
from core.settings import load_settings
from writers.flush import flush_table

def stall_after_commit(step, version):
    if step == "committed":
        print("committed", version, flush=True)
        sys.stdin.readline()  # the test freezes this process (SIGSTOP), then lets it go on

settings = load_settings(lake_dir=sys.argv[1])
flush_table(settings, redis.Redis.from_url(settings.redis_url), Table.XACT_EVENTS,
            prefix=sys.argv[2], lock_timeout_seconds=1.0, step_hook=stall_after_commit)
print("done", flush=True)
"""


class _Died(Exception):
    """A flusher that dies right after claiming its batch."""


def test_flush__stalled_flusher_never_deletes_the_batch_another_flusher_claimed(
    settings: Settings, redis_client: redis.Redis, prefix: str
) -> None:
    """F1 commits version 1 and stalls past its lock; F2 drops version 1 (already committed);
    F3 claims version 2 and dies; F1 resumes. Version 2's rows must survive F1 and land once."""
    stager = Stager(redis_client, prefix)
    stager.stage(Table.XACT_EVENTS, _events("v1-a", "v1-b"))
    f1 = subprocess.Popen(
        [sys.executable, "-c", _CHILD_STALLING_FLUSH, str(settings.lake_dir), prefix],
        cwd=Path(__file__).resolve().parents[2],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "REDIS_URL": settings.redis_url},
    )
    assert f1.stdin is not None and f1.stdout is not None
    try:
        assert f1.stdout.readline().split() == [b"committed", b"1"]
        os.kill(f1.pid, signal.SIGSTOP)  # a frozen process: its lock keeper stops too
        deadline = time.monotonic() + 10
        while redis_client.exists(lock_key(prefix, Table.XACT_EVENTS)):
            assert time.monotonic() < deadline, "F1's lock never expired"
            time.sleep(0.05)

        f2 = _flush(settings, redis_client, prefix, Table.XACT_EVENTS)
        assert f2.skipped_committed and f2.version == 1

        stager.stage(Table.XACT_EVENTS, _events("v2-a", "v2-b", "v2-c"))

        def die_after_claim(step: str, version: int) -> None:
            if step == "claimed":
                raise _Died(version)

        with pytest.raises(PipelineError) as died:
            _flush(settings, redis_client, prefix, Table.XACT_EVENTS, step_hook=die_after_claim)
        assert isinstance(died.value.__cause__, _Died)
        assert redis_client.get(batch_version_key(prefix, Table.XACT_EVENTS)) == b"2"
        assert stager.in_flight(Table.XACT_EVENTS) == 3

        os.kill(f1.pid, signal.SIGCONT)
        f1.stdin.write(b"\n")
        f1.stdin.flush()
        assert f1.stdout.readline().strip() == b"done"
        assert f1.wait(timeout=30) == 0
    finally:
        if f1.poll() is None:
            os.kill(f1.pid, signal.SIGKILL)
            f1.wait(timeout=10)

    assert stager.in_flight(Table.XACT_EVENTS) == 3, "F1 deleted the batch F3 had claimed"
    f4 = _flush(settings, redis_client, prefix, Table.XACT_EVENTS)
    assert (f4.version, f4.rows_written, f4.skipped_committed) == (2, 3, False)
    assert sorted(read_table(settings, Table.XACT_EVENTS)["trace_id"].to_list()) == [
        "v1-a",
        "v1-b",
        "v2-a",
        "v2-b",
        "v2-c",
    ]
    assert (
        DeltaTable(table_uri(settings, Table.XACT_EVENTS)).transaction_version(app_id(Table.XACT_EVENTS)) == 2
    )


@pytest.mark.parametrize("table", [Table.XACT_EVENTS, Table.XACT_ATTACHMENTS_FAILED])
def test_merge_batch__stale_snapshot_cannot_append_over_a_newer_commit(
    settings: Settings, redis_client: redis.Redis, prefix: str, table: Table
) -> None:
    """The window the lock cannot close: a flusher checked its lock, then stalled before its
    commit while another flusher committed the same batch. New keys go in as a plain append, so
    the fence is Delta's: a commit with the flusher's app id after the stale snapshot fails it."""
    key = TABLES[table].keys[0]
    stager = Stager(redis_client, prefix)
    stager.stage(table, [_keyed(table, "first")])
    assert _flush(settings, redis_client, prefix, table).rows_written == 1
    uri = table_uri(settings, table)
    stale = DeltaTable(uri)  # the stalled flusher's snapshot, taken before version 2 landed

    stager.stage(table, [_keyed(table, "again")])
    assert _flush(settings, redis_client, prefix, table).version == 2
    batch = build_batch(TABLES[table], encode_row(_keyed(table, "again")).encode())

    with pytest.raises(CommitFailedError, match="Concurrent transaction"):
        merge_batch(uri, None, TABLES[table], batch.table, Transaction(app_id(table), 2), stale)
    assert sorted(read_table(settings, table)[key].to_list()) == ["again", "first"]


def _keyed(table: Table, key: str) -> dict[str, object]:
    if table is Table.XACT_EVENTS:
        return _events(key)[0]
    return {"media_id": key, "trace_id": "t", "status": "failed", "created_at": "2026-01-05T14:02:11Z"}
