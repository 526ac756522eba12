"""The xact raw event model and parser (SPEC §2.5, §3.1 step 1)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from core.errors import ErrorCategory, PermanentError
from domains.xact.models import XactEvent, XactParseError, parse_xact_record
from tests.samples import SAMPLES

LINES = (SAMPLES / "xact_events.jsonl").read_text(encoding="utf-8").splitlines()


def _line(number: int) -> str:
    return LINES[number - 1]


@pytest.mark.parametrize("number", [n for n in range(1, len(LINES) + 1) if n != 15])
def test_parse__every_valid_sample_line_parses(number):
    event = parse_xact_record(_line(number))
    suffix = 2 if number == 12 else number  # line 12 repeats line 2
    assert event.trace_id == f"3f9b2c1e-7a44-4c1d-9e2b-0a1b2c3d4e{suffix:02d}"
    assert event.type.startswith("verisk.claims.property.xn.")


def test_parse__line_15_truncated_json_is_a_permanent_parse_error():
    with pytest.raises(XactParseError, match="not valid JSON") as info:
        parse_xact_record(_line(15))
    assert isinstance(info.value, PermanentError)
    assert info.value.category is ErrorCategory.PERMANENT


def test_parse__accepts_bytes_and_dicts():
    assert parse_xact_record(_line(1).encode()).trace_id.endswith("4e01")
    assert parse_xact_record(json.loads(_line(1))).trace_id.endswith("4e01")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            '{"type": "verisk.claims.property.xn.documentsReceived", "utcDateTime": "2026-01-05T14:02:11Z"}',
            "traceId is required",
        ),
        (
            '{"type": "verisk.claims.property.xn.documentsReceived", "utcDateTime": "2026-01-05T14:02:11Z",'
            ' "traceId": "   "}',
            "traceId must be a non-blank string",
        ),
        ('{"utcDateTime": "2026-01-05T14:02:11Z", "traceId": "t-1"}', "type is required"),
        (
            '{"type": " ", "utcDateTime": "2026-01-05T14:02:11Z", "traceId": "t-1"}',
            "type must be a non-blank",
        ),
        (
            '{"type": "x.y", "utcDateTime": "yesterday at noon", "traceId": "t-1"}',
            "utcDateTime must be an ISO-8601",
        ),
        ('{"type": "x.y", "traceId": "t-1"}', "utcDateTime is required"),
        ("[1, 2]", "must be a JSON object, got list"),
        ('"just a string"', "must be a JSON object, got str"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_parse__invalid_records_raise_clear_parse_errors(raw, message):
    with pytest.raises(XactParseError, match=message):
        parse_xact_record(raw)


def test_parse__error_message_never_echoes_field_values():
    with pytest.raises(XactParseError) as info:
        parse_xact_record({"type": "x.y", "traceId": "t", "utcDateTime": "sig=SECRET123"})
    assert "SECRET123" not in str(info.value)


def test_trace_id_alias__line_19_snake_case_is_accepted_and_dumped_camel_case():
    event = parse_xact_record(_line(19))
    assert event.trace_id == "3f9b2c1e-7a44-4c1d-9e2b-0a1b2c3d4e19"
    assert event.status_subtype == "policyReceived"
    dumped = event.model_dump(by_alias=True)
    assert dumped["traceId"] == event.trace_id and "trace_id" not in dumped


def test_event_id__either_spelling_is_accepted():
    base = {"type": "x.y", "traceId": "t", "utcDateTime": "2026-01-05T14:02:11Z"}
    assert parse_xact_record({**base, "eventId": "e-1"}).event_id == "e-1"
    assert parse_xact_record({**base, "event_id": "e-2"}).event_id == "e-2"
    assert parse_xact_record(base).event_id is None


def test_data_as_string__line_13_is_decoded_to_an_object():
    event = parse_xact_record(_line(13))
    assert isinstance(event.data, dict)
    assert event.assignment_id == "A-7100460"
    assert event.attachments == [
        "https://xn-exportreceiver.s3.example.com/exports/A-7100460/signed_agreement.pdf"
    ]


@pytest.mark.parametrize("data", ['{"assignmentId": ', "[1, 2]", 42, None, ["a"]])
def test_data__unusable_values_become_empty(data):
    event = parse_xact_record(
        {"type": "x.y", "traceId": "t", "utcDateTime": "2026-01-05T14:02:11Z", "data": data}
    )
    assert event.data == {} and event.assignment_id is None and event.attachments == []


@pytest.mark.parametrize(
    ("version", "parsed"),
    [
        (1, 1),
        ("2", 2),
        (" 3 ", 3),
        ("-1", -1),
        ("v2.1", "v2.1"),
        ("2.0", "2.0"),
        (2.0, 2),
        (None, None),
    ],
)
def test_version__numeric_strings_become_int_other_strings_kept(version, parsed):
    event = parse_xact_record(
        {"type": "x.y", "traceId": "t", "utcDateTime": "2026-01-05T14:02:11Z", "version": version}
    )
    assert event.version == parsed and type(event.version) is type(parsed)


def test_version__line_14_numeric_string_is_int():
    assert parse_xact_record(_line(14)).version == 2


def test_type_and_trace_id_are_trimmed():
    event = parse_xact_record(
        {
            "type": "  verisk.claims.property.xn.documentsReceived ",
            "traceId": " t-1 ",
            "utcDateTime": " 2026-01-05T14:02:11Z ",
        }
    )
    assert event.type == "verisk.claims.property.xn.documentsReceived"
    assert event.trace_id == "t-1"
    assert event.status_subtype == "documentsReceived"


def test_event_time__trailing_z_and_naive_times_are_utc():
    assert parse_xact_record(_line(1)).event_time == datetime(2026, 1, 5, 14, 2, 11, 120000, tzinfo=UTC)
    naive = parse_xact_record({"type": "x.y", "traceId": "t", "utcDateTime": "2026-01-05T14:02:11"})
    assert naive.event_time == datetime(2026, 1, 5, 14, 2, 11, tzinfo=UTC)


def test_attachments__blanks_and_non_strings_dropped_repeats_removed_order_kept():
    event = parse_xact_record(
        {
            "type": "x.y",
            "traceId": "t",
            "utcDateTime": "2026-01-05T14:02:11Z",
            "data": {
                "attachments": ["https://h/b.pdf", "", None, 7, "  ", "https://h/a.pdf", "https://h/b.pdf"]
            },
        }
    )
    assert event.attachments == ["https://h/b.pdf", "https://h/a.pdf"]


def test_assignment_and_estimate_version__trimmed_blank_is_none():
    event = parse_xact_record(_line(4))
    assert (event.assignment_id, event.estimate_version) == ("A-7100451", "2")
    assert parse_xact_record(_line(5)).estimate_version is None
    assert parse_xact_record(_line(8)).assignment_id is None
    blank = parse_xact_record(
        {
            "type": "x.y",
            "traceId": "t",
            "utcDateTime": "2026-01-05T14:02:11Z",
            "data": {"assignmentId": "  ", "estimateVersion": 2},
        }
    )
    assert blank.assignment_id is None and blank.estimate_version == "2"


def test_dump__camel_case_data_as_object_and_no_derived_fields():
    event = parse_xact_record(_line(13)).with_event_id("e-13")
    dumped = event.model_dump(by_alias=True)
    assert set(dumped) == {"type", "version", "utcDateTime", "traceId", "eventId", "data"}
    assert dumped["eventId"] == "e-13"
    assert isinstance(dumped["data"], dict) and dumped["data"]["assignmentId"] == "A-7100460"
    assert event.to_bus() == dumped


def test_dump__round_trips_through_json():
    event = parse_xact_record(_line(1)).with_event_id("e-1")
    again = parse_xact_record(json.dumps(event.to_bus()))
    assert again == event


def test_event__is_immutable():
    event = parse_xact_record(_line(1))
    with pytest.raises(ValueError):
        event.trace_id = "other"  # type: ignore[misc]  # the frozen model must refuse it
    assert isinstance(event, XactEvent)
