"""Staged rows become exactly-typed, de-duplicated Arrow batches (writers.coerce)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from domains.names import Table
from writers.coerce import build_batch, to_bool, to_date, to_float, to_int, to_timestamp
from writers.staging import encode_row
from writers.tables import TABLES

NOW = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


def _batch(table: Table, rows: list[Any]):
    """Rows as the stager leaves them: one JSON text per line (strings are taken verbatim)."""
    lines = [row if isinstance(row, str) else encode_row(row) for row in rows]
    return build_batch(TABLES[table], "\n".join(lines).encode(), now=NOW)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-05T14:02:11.120Z", datetime(2026, 1, 5, 14, 2, 11, 120000, tzinfo=UTC)),
        ("2026-01-05T14:02:11.1234567Z", datetime(2026, 1, 5, 14, 2, 11, 123456, tzinfo=UTC)),
        ("2026-01-05T07:02:11-07:00", datetime(2026, 1, 5, 14, 2, 11, tzinfo=UTC)),
        ("2026-01-05 14:02:11", datetime(2026, 1, 5, 14, 2, 11, tzinfo=UTC)),
        ("not a time", None),
        (12345, None),
        (None, None),
    ],
)
def test_to_timestamp__iso_strings_become_utc(value: Any, expected: datetime | None) -> None:
    assert to_timestamp(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-05", date(2026, 1, 5)),
        ("2026-01-05T23:30:00-05:00", date(2026, 1, 6)),
        ("2026-13-45", None),
        ("", None),
        (None, None),
    ],
)
def test_to_date__accepts_dates_and_timestamps_as_utc_date(value: Any, expected: date | None) -> None:
    assert to_date(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, 5),
        ("  42 ", 42),
        (3.0, 3),
        ("3.0", 3),
        (3.5, None),
        ("abc", None),
        (True, None),
        (2**70, None),
    ],
)
def test_to_int__lenient(value: Any, expected: int | None) -> None:
    assert to_int(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("29.76", 29.76),
        (-95, -95.0),
        ("nan", None),
        ("inf", None),
        ("x", None),
        (False, None),
    ],
)
def test_to_float__lenient(value: Any, expected: float | None) -> None:
    assert to_float(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("TRUE", True),
        ("yes", True),
        ("1", True),
        ("2", True),
        ("0.0", False),
        ("false", False),
        ("No", False),
        (0, False),
        ("maybe", None),
        (None, None),
    ],
)
def test_to_bool__accepts_spec_spellings(value: Any, expected: bool | None) -> None:
    assert to_bool(value) == expected


def test_build_batch__json_values_in_text_columns_become_their_json_text() -> None:
    [row] = _batch(
        Table.XACT_EVENTS,
        [{"trace_id": "t1", "version": 1, "note": True, "raw_json": {"traceId": "t1", "data": [1, 2]}}],
    ).table.to_pylist()
    assert (row["version"], row["note"]) == ("1", "true")
    assert json.loads(row["raw_json"]) == {"traceId": "t1", "data": [1, 2]}


def test_build_batch__missing_columns_are_null_and_unknown_keys_dropped() -> None:
    batch = _batch(
        Table.XACT_ATTACHMENTS,
        [
            {"media_id": "m1", "bytes_downloaded": "1024", "bogus": 1},
            {"media_id": "m2", "bytes_downloaded": 2048.0},
        ],
    )
    row = batch.table.to_pylist()[0]
    assert batch.table.column("bytes_downloaded").to_pylist() == [1024, 2048]
    assert row["trace_id"] is None
    assert "bogus" not in row
    assert batch.table.schema == TABLES[Table.XACT_ATTACHMENTS].schema


def test_build_batch__fills_write_time_and_partition_date_when_absent() -> None:
    batch = _batch(Table.XACT_EVENTS, [{"trace_id": "t1", "ingested_at": "2026-01-05T23:59:59Z"}])
    row = batch.table.to_pylist()[0]
    assert row["created_at"] == NOW
    assert row["created_date"] == NOW.date()
    assert row["event_date"] == date(2026, 1, 5)


def test_build_batch__insert_new_keeps_the_first_row_of_a_key() -> None:
    batch = _batch(
        Table.XACT_EVENTS,
        [{"trace_id": "t1", "note": "first"}, {"trace_id": "t2"}, {"trace_id": "t1", "note": "second"}],
    )
    assert [(r["trace_id"], r["note"]) for r in batch.table.to_pylist()] == [("t1", "first"), ("t2", None)]


def test_build_batch__upsert_later_non_null_values_win_and_created_at_keeps_first() -> None:
    batch = _batch(
        Table.CLAIMX_PROJECTS,
        [
            {"project_id": "5010001", "status": "Active", "city": "Sampleville"},
            {
                "project_id": "5010001",
                "status": None,
                "xa_autolink_fail": True,
                "created_at": "2026-01-01T00:00:00Z",
            },
            {"project_id": "5010001", "status": "Closed", "created_at": "2026-01-03T00:00:00Z"},
        ],
    )
    [row] = batch.table.to_pylist()
    assert (row["status"], row["city"], row["xa_autolink_fail"]) == ("Closed", "Sampleville", True)
    assert row["created_at"] == datetime(2026, 1, 1, tzinfo=UTC)


def test_build_batch__keys_compare_after_coercion() -> None:
    batch = _batch(
        Table.CLAIMX_TASKS,
        [{"assignment_id": "7700001", "status": "A"}, {"assignment_id": 7700001, "status": "B"}],
    )
    assert [(r["assignment_id"], r["status"]) for r in batch.table.to_pylist()] == [(7700001, "B")]


def test_build_batch__composite_key_with_null_part_combines() -> None:
    rows = [
        {"project_id": "1", "contact_email": None, "contact_type": "POLICYHOLDER", "first_name": "A"},
        {"project_id": "1", "contact_email": None, "contact_type": "POLICYHOLDER", "last_name": "B"},
    ]
    [row] = _batch(Table.CLAIMX_CONTACTS, rows).table.to_pylist()
    assert (row["first_name"], row["last_name"]) == ("A", "B")


def test_build_batch__unreadable_and_keyless_rows_are_dropped_and_counted() -> None:
    batch = _batch(
        Table.XACT_EVENTS,
        [
            "{not json",
            json.dumps([1, 2]),
            '"text"',
            {"note": "no key"},
            {"trace_id": "t1"},
            '{"trace_id":"t2","version":NaN}',
        ],
    )
    assert (batch.rows_in, batch.dropped_unreadable, batch.dropped_no_key) == (6, 3, 1)
    assert batch.table.column("trace_id").to_pylist() == ["t1", "t2"]
    assert batch.table.column("version").to_pylist() == [None, None]


def test_build_batch__invalid_utf8_line_is_dropped_not_fatal() -> None:
    raw = b'{"media_id":"m1"}\n{"media_id":"\xff"}\n'
    batch = build_batch(TABLES[Table.XACT_ATTACHMENTS], raw, now=NOW)
    assert (batch.table.column("media_id").to_pylist(), batch.dropped_unreadable) == (["m1"], 1)


def test_encode_row__datetimes_and_decimals_are_exact_strings() -> None:
    from decimal import Decimal

    encoded = json.loads(
        encode_row({"at": datetime(2026, 1, 5, tzinfo=UTC), "d": date(2026, 1, 5), "n": Decimal("12.50")})
    )
    assert encoded == {"at": "2026-01-05T00:00:00+00:00", "d": "2026-01-05", "n": "12.50"}
    with pytest.raises(TypeError):
        encode_row({"x": object()})
    assert json.loads(encode_row({"f": float("nan"), "g": [float("inf"), 1.5]})) == {
        "f": None,
        "g": [None, 1.5],
    }
    assert "\n" not in encode_row({"text": "line1\nline2"})


def test_build_batch__partition_date_falls_back_to_write_date_when_event_time_is_unreadable() -> None:
    [row] = _batch(Table.CLAIMX_EVENTS, [{"event_id": "e1", "ingested_at": "garbage"}]).table.to_pylist()
    assert row["ingested_at"] is None and row["event_date"] == NOW.date()


def test_build_batch__many_rows_convert_each_distinct_value_once_and_keep_order() -> None:
    rows = [
        {"media_id": f"m{i}", "bytes_downloaded": i % 7, "downloaded_at": f"2026-01-05T00:00:{i % 60:02d}Z"}
        for i in range(5000)
    ]
    table = _batch(Table.XACT_ATTACHMENTS, rows).table
    assert table.num_rows == 5000
    assert table.column("bytes_downloaded").to_pylist()[:8] == [0, 1, 2, 3, 4, 5, 6, 0]
    assert table.column("downloaded_at").to_pylist()[61] == datetime(2026, 1, 5, 0, 0, 1, tzinfo=UTC)


def test_build_batch__empty_input_is_an_empty_batch() -> None:
    batch = build_batch(TABLES[Table.CLAIMX_EVENTS], b"", now=NOW)
    assert (batch.rows_in, batch.table.num_rows) == (0, 0)
    assert batch.table.schema == TABLES[Table.CLAIMX_EVENTS].schema
