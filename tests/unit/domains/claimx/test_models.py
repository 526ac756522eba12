"""claimx event parsing and the claimx_events row (SPEC §2.6, §4.8; DECISIONS "Identifiers")."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.errors import ErrorCategory
from domains.claimx.models import ClaimXParseError, EventType, event_row, parse_claimx_record
from domains.ids import claimx_event_id
from tests.unit.domains.claimx.conftest import sample_lines

KAFKA_TS = datetime(2026, 2, 1, 8, 30, tzinfo=UTC)


def test_parse__every_sample_line_parses_with_a_derived_uuid() -> None:
    events = [parse_claimx_record(line, kafka_timestamp=None) for line in sample_lines()]
    assert len(events) == 22
    assert {e.known_type for e in events} == set(EventType)


def test_parse__camel_case_row_maps_fields_and_derives_event_id() -> None:
    event = parse_claimx_record(sample_lines()[1].encode(), kafka_timestamp=KAFKA_TS)
    assert (event.event_type, event.project_id, event.media_id) == ("PROJECT_FILE_ADDED", "5010001", "880001")
    assert event.ingested_at == datetime(2026, 1, 5, 17, 1, 10, tzinfo=UTC)  # source time, not Kafka's
    assert event.event_id == claimx_event_id(
        "5010001", "PROJECT_FILE_ADDED", event.ingested_at, media_id="880001"
    )


def test_parse__source_event_id_is_ignored_for_the_derived_one() -> None:
    event = parse_claimx_record(sample_lines()[20], kafka_timestamp=None)
    assert event.event_id != "src-evt-000021"
    assert event.event_id == parse_claimx_record(sample_lines()[1], kafka_timestamp=None).event_id


def test_parse__ingestion_time_spelling_is_read() -> None:
    event = parse_claimx_record(
        {"event_type": "PROJECT_CREATED", "project_id": "1", "ingestion_time": "2026-01-05T10:00:00+02:00"},
        kafka_timestamp=KAFKA_TS,
    )
    assert event.ingested_at == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def test_parse__no_source_time_falls_back_to_kafka_timestamp() -> None:
    event = parse_claimx_record({"eventType": "PROJECT_CREATED", "projectId": 1}, kafka_timestamp=KAFKA_TS)
    assert event.ingested_at == KAFKA_TS and event.project_id == "1"


def test_parse__naive_kafka_timestamp_is_taken_as_utc() -> None:
    event = parse_claimx_record(
        {"eventType": "X", "projectId": "1"}, kafka_timestamp=datetime(2026, 1, 1, 12, 0)
    )
    assert event.ingested_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_parse__no_time_at_all_is_a_parse_error_not_wall_clock() -> None:
    with pytest.raises(ClaimXParseError, match="no ingestion time"):
        parse_claimx_record({"eventType": "PROJECT_CREATED", "projectId": "1"}, kafka_timestamp=None)


def test_parse__unreadable_time_is_a_parse_error() -> None:
    with pytest.raises(ClaimXParseError, match="unreadable"):
        parse_claimx_record(
            {"eventType": "A", "projectId": "1", "IngestionTime": "yesterday"}, kafka_timestamp=KAFKA_TS
        )


def test_parse__epoch_millis_time_is_accepted() -> None:
    event = parse_claimx_record(
        {"eventType": "A", "projectId": "1", "IngestionTime": 1767632400000}, kafka_timestamp=None
    )
    assert event.ingested_at == datetime(2026, 1, 5, 17, 0, tzinfo=UTC)


@pytest.mark.parametrize("raw", [b"{not json", "[1, 2]", b"\xff\xfe", '"text"'])
def test_parse__bad_json_or_non_object_is_permanent(raw: bytes | str) -> None:
    with pytest.raises(ClaimXParseError) as info:
        parse_claimx_record(raw, kafka_timestamp=KAFKA_TS)
    assert info.value.category is ErrorCategory.PERMANENT


@pytest.mark.parametrize(
    "row",
    [
        {"projectId": "1"},
        {"eventType": "  ", "projectId": "1"},
        {"eventType": "PROJECT_CREATED"},
        {"eventType": "PROJECT_CREATED", "projectId": "   "},
    ],
)
def test_parse__missing_type_or_project_is_permanent(row: dict) -> None:
    with pytest.raises(ClaimXParseError):
        parse_claimx_record(row, kafka_timestamp=KAFKA_TS)


def test_parse__values_are_trimmed_and_blank_optionals_become_none() -> None:
    event = parse_claimx_record(
        {
            "eventType": " PROJECT_MFN_ADDED ",
            "projectId": " 5010001 ",
            "masterFileName": "   ",
            "mediaId": "",
            "taskAssignmentId": 7700001,
        },
        kafka_timestamp=KAFKA_TS,
    )
    assert event.event_type == "PROJECT_MFN_ADDED" and event.project_id == "5010001"
    assert event.master_file_name is None and event.media_id is None
    assert event.task_assignment_id == "7700001"


def test_model__raw_data_is_kept_but_never_dumped() -> None:
    event = parse_claimx_record(sample_lines()[0], kafka_timestamp=None)
    assert event.raw_data["IngestionTime"] == "2026-01-05T17:00:01.000Z"
    assert "raw_data" not in event.model_dump() and "raw_data" not in event.model_dump_json()


def test_model__json_round_trip_preserves_the_event() -> None:
    event = parse_claimx_record(sample_lines()[3], kafka_timestamp=None)
    again = type(event).model_validate_json(event.model_dump_json())
    assert again == event.model_copy(update={"raw_data": {}})


def test_event_row__has_iso_timestamps_and_event_date_from_ingested_at() -> None:
    event = parse_claimx_record(
        {
            "eventType": "PROJECT_CREATED",
            "projectId": "5010001",
            "IngestionTime": "2026-01-05T23:30:00-05:00",
        },
        kafka_timestamp=None,
    )
    now = datetime(2026, 1, 7, 1, 2, 3, tzinfo=timezone(timedelta(hours=1)))
    row = event_row(event, now=now)
    assert row == {
        "event_id": event.event_id,
        "event_type": "PROJECT_CREATED",
        "project_id": "5010001",
        "media_id": None,
        "task_assignment_id": None,
        "video_collaboration_id": None,
        "master_file_name": None,
        "ingested_at": "2026-01-06T04:30:00+00:00",
        "created_at": "2026-01-07T00:02:03+00:00",
        "event_date": "2026-01-06",
    }
    json.dumps(row)  # plain JSON types only
