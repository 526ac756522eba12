"""The poller's pure parts: KQL text, literals, Kusto times, re-filtering, checkpoints, error classes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from azure.kusto.data.exceptions import KustoAuthenticationError, KustoServiceError, KustoThrottlingError

from core.errors import AuthError, ConfigError, ErrorCategory
from core.settings import load_settings
from dispatcher.checkpoint import CheckpointStore
from dispatcher.kusto import (
    RetryPolicy,
    classify,
    format_time,
    kql_string,
    kql_table,
    parse_time,
    ticks_of,
    token_file_provider,
)
from dispatcher.poll_query import (
    Cursor,
    Source,
    after_cursor,
    build_group_query,
    build_query,
    complete_groups,
)
from dispatcher.poller import Poller, to_line
from domains.names import Domain

XACT = Source(Domain.XACT, "https://c.kusto.fabric.microsoft.com", "DB", "Events", "traceId")
CLAIMX = Source(Domain.CLAIMX, "https://c.kusto.fabric.microsoft.com", "DB", "ClaimXEvents", None)
T0 = "2026-01-05T14:22:31.1234567Z"


def _row(time: str, trace: str | None = None) -> dict[str, object]:
    return {"traceId": trace, "ingestion_time": time}


# --- query text -----------------------------------------------------------------------------------
def test_build_query__xact_with_checkpoint_resumes_on_the_composite_key() -> None:
    query = build_query(
        XACT,
        cursor=Cursor(parse_time(T0), "abc"),
        start_ticks=0,
        end_ticks=parse_time("2026-01-05T15:00:00Z"),
        batch_size=8000,
    )
    assert query == (
        "['Events']\n"
        "| where ingestion_time() > datetime(2026-01-05T14:22:31.1234567Z) or "
        "(ingestion_time() == datetime(2026-01-05T14:22:31.1234567Z) and strcmp(tostring(traceId), 'abc') > 0)\n"
        "| where ingestion_time() < datetime(2026-01-05T15:00:00.0000000Z)\n"
        "| extend ingestion_time = ingestion_time()\n"
        "| order by ingestion_time asc, traceId asc\n"
        "| take 8000"
    )


def test_build_query__without_checkpoint_starts_inclusively_at_the_lookback() -> None:
    start = parse_time("2026-01-05T13:00:00Z")
    query = build_query(XACT, cursor=None, start_ticks=start, end_ticks=start + 1, batch_size=10)
    assert "| where ingestion_time() >= datetime(2026-01-05T13:00:00.0000000Z)\n" in query
    assert "strcmp" not in query


def test_build_query__claimx_orders_by_ingestion_time_only_and_resumes_after_the_group() -> None:
    query = build_query(
        CLAIMX, cursor=Cursor(parse_time(T0)), start_ticks=0, end_ticks=parse_time(T0) + 1, batch_size=1000
    )
    assert query.splitlines() == [
        "['ClaimXEvents']",
        "| where ingestion_time() > datetime(2026-01-05T14:22:31.1234567Z)",
        "| where ingestion_time() < datetime(2026-01-05T14:22:31.1234568Z)",
        "| extend ingestion_time = ingestion_time()",
        "| order by ingestion_time asc",
        "| take 1000",
    ]


def test_build_group_query__selects_exactly_one_ingestion_time() -> None:
    assert "| where ingestion_time() == datetime(2026-01-05T14:22:31.1234567Z)\n" in build_group_query(
        CLAIMX, parse_time(T0)
    )


def test_kql_string__escapes_backslash_quote_and_line_breaks() -> None:
    assert kql_string("it's") == r"'it\'s'"
    assert kql_string("a\\b") == r"'a\\b'"
    assert kql_string("x\ny\r\tz") == r"'x\ny\r\tz'"


def test_build_query__trace_id_with_quotes_cannot_leave_its_literal() -> None:
    hostile = "x') or true or strcmp('a"
    query = build_query(
        XACT, cursor=Cursor(parse_time(T0), hostile), start_ticks=0, end_ticks=1, batch_size=1
    )
    literal = r"'x\') or true or strcmp(\'a'"
    assert f"strcmp(tostring(traceId), {literal}) > 0)" in query
    # remove the one literal: no quote is left on the predicate line
    predicate = query.splitlines()[1].replace(literal, "")
    assert "'" not in predicate


def test_kql_table__is_bracket_quoted() -> None:
    assert kql_table("tbl_VERISK_XACTANALYSIS_STATUS_EXPORT") == "['tbl_VERISK_XACTANALYSIS_STATUS_EXPORT']"
    assert kql_table("a'] | evil") == r"['a\'] | evil']"


# --- Kusto times --------------------------------------------------------------------------------
def test_time__seven_fraction_digits_survive_a_round_trip() -> None:
    assert format_time(parse_time(T0)) == T0
    assert parse_time("2026-01-05T14:22:31.1234567Z") - parse_time("2026-01-05T14:22:31.123456Z") == 7


def test_time__kusto_forms_and_offsets_parse_to_the_same_instant() -> None:
    expected = parse_time("2026-01-05T14:22:31.0000000Z")
    assert parse_time("2026-01-05T14:22:31Z") == expected
    assert parse_time("2026-01-05 14:22:31") == expected
    assert parse_time("2026-01-05T16:22:31+02:00") == expected
    assert ticks_of(datetime(2026, 1, 5, 14, 22, 31, tzinfo=UTC)) == expected
    assert ticks_of(datetime(2026, 1, 5, 16, 22, 31, tzinfo=timezone(timedelta(hours=2)))) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2026-01-05T14:22:31Z') | evil", "2026-13-01T00:00:00Z"])
def test_time__anything_else_is_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


# --- re-filtering ---------------------------------------------------------------------------------
def test_after_cursor__xact_keeps_only_rows_after_the_composite_key() -> None:
    later = "2026-01-05T14:22:31.1234568Z"
    rows = [
        _row("2026-01-05T14:22:31.1234566Z", "z"),
        _row(T0, "a"),
        _row(T0, "m"),
        _row(T0, "n"),
        _row(later, "a"),
    ]
    kept = after_cursor(XACT, rows, Cursor(parse_time(T0), "m"))
    assert kept == [_row(T0, "n"), _row(later, "a")]


def test_after_cursor__claimx_drops_rows_at_or_before_the_checkpoint_time() -> None:
    rows = [_row(T0), _row("2026-01-05T14:22:31.1234568Z")]
    assert after_cursor(CLAIMX, rows, Cursor(parse_time(T0))) == rows[1:]
    assert after_cursor(CLAIMX, rows, None) == rows


def test_complete_groups__drops_the_trailing_ingestion_time_group() -> None:
    t1 = "2026-01-05T14:22:32Z"
    rows = [_row(T0), _row(T0), _row(t1), _row(t1)]
    assert complete_groups(CLAIMX, rows) == rows[:2]
    assert complete_groups(CLAIMX, rows[:2]) == []


def test_to_line__is_compact_json_with_iso_datetimes() -> None:
    line = to_line(
        {"eventType": "PROJECT_CREATED", "when": datetime(2026, 1, 5, tzinfo=UTC), "name": "Ärger"}
    )
    assert json.loads(line) == {
        "eventType": "PROJECT_CREATED",
        "when": "2026-01-05T00:00:00+00:00",
        "name": "Ärger",
    }


# --- checkpoint ---------------------------------------------------------------------------------
def test_checkpoint__save_then_load_keeps_full_precision_and_the_trace_id(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "poller_xact.json")
    assert store.load() is None
    store.save(Cursor(parse_time(T0), "trace-1"), now=datetime(2026, 1, 5, 15, tzinfo=UTC))
    assert store.load() == Cursor(parse_time(T0), "trace-1")
    assert json.loads(store.path.read_text()) == {
        "last_ingestion_time": T0,
        "last_trace_id": "trace-1",
        "updated_at": "2026-01-05T15:00:00+00:00",
    }


def test_checkpoint__claimx_has_no_trace_id(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "poller_claimx.json")
    store.save(Cursor(parse_time(T0)), now=datetime.now(UTC))
    assert json.loads(store.path.read_text())["last_trace_id"] is None
    assert store.load() == Cursor(parse_time(T0), "")


def test_checkpoint__save_replaces_the_file_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "poller_xact.json")
    first = store.path
    store.save(Cursor(1, "a"), now=datetime.now(UTC))
    inode = first.stat().st_ino
    store.save(Cursor(2, "b"), now=datetime.now(UTC))
    assert [p.name for p in tmp_path.iterdir()] == ["poller_xact.json"]
    assert first.stat().st_ino != inode  # a new file renamed over the old one, never rewritten in place
    assert store.load() == Cursor(2, "b")


def test_checkpoint__a_leftover_temp_file_from_a_crash_does_not_matter(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "poller_xact.json")
    store.save(Cursor(5, "e"), now=datetime.now(UTC))
    (tmp_path / ".poller_xact.json.abc.tmp").write_text('{"last_ingestion_ti')  # a write cut short
    assert store.load() == Cursor(5, "e")
    store.save(Cursor(6, "f"), now=datetime.now(UTC))
    assert store.load() == Cursor(6, "f")


def test_checkpoint__an_unreadable_file_fails_fast_with_its_path(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "poller_xact.json")
    store.path.write_text('{"last_ingestion_time": "not a time"}')
    with pytest.raises(ConfigError, match="poller_xact.json"):
        store.load()


def test_checkpoint__a_second_poller_on_the_same_file_is_refused(tmp_path: Path) -> None:
    first, second = CheckpointStore(tmp_path / "p.json"), CheckpointStore(tmp_path / "p.json")
    with first.exclusive(), pytest.raises(ConfigError, match="another poller"), second.exclusive():
        pass
    with second.exclusive():
        pass


class _RecordingClient:
    """Stands in for Eventhouse: records the KQL it is sent, returns no rows."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def query(self, kql: str) -> list[dict[str, object]]:
        self.queries.append(kql)
        return []

    def close(self) -> None:
        pass


class _NoSink:
    def publish(self, lines: object) -> None:
        raise AssertionError("nothing to publish")

    def close(self) -> None:
        pass


def test_poller__a_new_process_resumes_from_the_saved_checkpoint(tmp_path: Path) -> None:
    settings = load_settings(checkpoint_dir=tmp_path, poll_batch_size=50)
    CheckpointStore(tmp_path / "poller_xact.json").save(
        Cursor(parse_time(T0), "last-id"), now=datetime.now(UTC)
    )
    client = _RecordingClient()
    poller = Poller(settings, XACT, client, _NoSink())
    result = poller.poll_once()
    assert (result.fetched, result.published, result.more) == (0, 0, False)
    assert "strcmp(tostring(traceId), 'last-id') > 0" in client.queries[0]
    assert f"ingestion_time() == datetime({T0})" in client.queries[0]
    assert poller.store.load() == Cursor(parse_time(T0), "last-id")  # nothing published, nothing moved


def test_poller__backfill_with_a_start_keeps_its_own_checkpoint_file(tmp_path: Path) -> None:
    from dispatcher.poller import Backfill

    settings = load_settings(checkpoint_dir=tmp_path)
    poller = Poller(settings, XACT, _RecordingClient(), _NoSink(), backfill=Backfill(datetime(2026, 1, 1)))
    assert poller.store.path.name == "poller_xact_backfill_20260101T000000.0000000Z.json"
    assert Poller(settings, XACT, _RecordingClient(), _NoSink(), backfill=Backfill()).store.path.name == (
        "poller_xact.json"
    )


# --- errors, retries, tokens ------------------------------------------------------------------------
def test_classify__throttling_and_40501_are_transient_auth_is_auth() -> None:
    assert classify(KustoThrottlingError("throttled")).category is ErrorCategory.TRANSIENT
    assert classify(KustoServiceError("Error 40501: the service is busy")).category is ErrorCategory.TRANSIENT
    assert (
        classify(KustoAuthenticationError("AzureIdentity", RuntimeError("no token"))).category
        is ErrorCategory.AUTH
    )
    assert classify(KustoServiceError("something odd")).category is ErrorCategory.UNKNOWN


def test_classify__secrets_in_error_text_are_redacted() -> None:
    error = classify(KustoServiceError("failed: Authorization: Bearer eyJhbGciOi.secret.part"))
    assert "eyJhbGciOi" not in error.message


def test_retry_policy__delays_grow_and_stay_within_the_cap() -> None:
    policy = RetryPolicy(max_retries=10, base_delay_seconds=1.0, max_delay_seconds=30.0)
    delays = [policy.delay(n) for n in range(10)]
    assert all(0.5 <= d <= 30.0 for d in delays)
    assert delays[0] <= 1.0 and delays[9] >= 15.0
    assert policy.delay(0, retry_after_seconds=12.0) >= 12.0
    assert policy.delay(0, retry_after_seconds=999.0) == 30.0


def test_token_file__raw_token_or_json_keyed_by_the_kusto_resource(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("raw-token\n")
    read = token_file_provider(path)
    assert read() == "raw-token"
    path.write_text(json.dumps({"https://storage.azure.com/": "s", "https://kusto.kusto.windows.net": "k"}))
    assert read() == "k"  # re-read on every call
    path.write_text(json.dumps({"https://storage.azure.com/": "s", "https://eventhubs.azure.net/": "e"}))
    with pytest.raises(AuthError):
        read()


def test_poller__window_ends_at_now_minus_settle_and_starts_at_the_lookback(tmp_path: Path) -> None:
    settings = load_settings(
        checkpoint_dir=tmp_path, eventhouse_settle_seconds=60, eventhouse_lookback_seconds=3600
    )
    client = _RecordingClient()
    now = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
    Poller(settings, CLAIMX, client, _NoSink(), clock=lambda: now).poll_once()
    assert "| where ingestion_time() >= datetime(2026-01-05T14:00:00.0000000Z)\n" in client.queries[0]
    assert "| where ingestion_time() < datetime(2026-01-05T14:59:00.0000000Z)\n" in client.queries[0]
