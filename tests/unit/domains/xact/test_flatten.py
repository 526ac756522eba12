"""Rows for xact_events, xact_attachments and xact_attachments_failed (SPEC §3.7, §3.8)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.errors import ErrorCategory
from domains.xact.flatten import (
    XACT_ATTACHMENT_COLUMNS,
    XACT_ATTACHMENT_FAILED_COLUMNS,
    XACT_EVENT_COLUMNS,
    attachment_row,
    failed_row,
    flatten_event,
)
from domains.xact.models import parse_xact_record
from tests.samples import SAMPLES

LINES = (SAMPLES / "xact_events.jsonl").read_text(encoding="utf-8").splitlines()
NOW = datetime(2026, 1, 6, 1, 30, tzinfo=timezone(timedelta(hours=2)))  # 2026-01-05T23:30Z


# The column tuples are the xact table schemas' names (domains.xact.tables); the SPEC column
# lists themselves are checked once, in tests/unit/writers/test_tables.py.


def _flatten(number: int, event_id: str = "e-id") -> dict:
    raw_row = json.loads(LINES[number - 1])
    return flatten_event(parse_xact_record(raw_row), raw_row, event_id=event_id, now=NOW)


def test_flatten__line_1_full_row():
    row = _flatten(1, event_id="0277fadd-4c29-5221-93fb-466e033e8a2f")
    raw_json = row.pop("raw_json")
    assert list(row) == [c for c in XACT_EVENT_COLUMNS if c != "raw_json"]
    assert row == {
        "type": "verisk.claims.property.xn.documentsReceived",
        "status_subtype": "documentsReceived",
        "version": "1",
        "ingested_at": "2026-01-05T14:02:11.120000+00:00",
        "event_date": "2026-01-05",
        "trace_id": "3f9b2c1e-7a44-4c1d-9e2b-0a1b2c3d4e01",
        "event_id": "0277fadd-4c29-5221-93fb-466e033e8a2f",
        "description": "Documents received from field adjuster",
        "assignment_id": "A-7100451",
        "original_assignment_id": "A-7100451",
        "xn_address": "XN-0451@xn.example.com",
        "carrier_id": "CARRIER-0042",
        "estimate_version": None,
        "note": "Initial document set",
        "author": "Pat Example",
        "sender_reviewer_name": "Robin Reviewer",
        "sender_reviewer_email": "robin.reviewer@example.com",
        "carrier_reviewer_name": "Casey Carrier",
        "carrier_reviewer_email": "casey.carrier@example.org",
        "event_datetime_mdt": "2026-01-05T07:02:11",
        "attachments": "https://xn-exportreceiver.s3.example.com/exports/A-7100451/3f9b2c1e/Inspection_Report.pdf,"
        "https://xn-exportreceiver.s3.example.com/exports/A-7100451/3f9b2c1e/front_elevation.jpg,"
        "https://xn-exportreceiver.s3.example.com/exports/A-7100451/3f9b2c1e/roof_sketch.xml",
        "claim_number": "CLM-TEST-000451",
        "contact_type": "Insured",
        "contact_name": "Jordan Testperson",
        "contact_phone_type": "Mobile",
        "contact_phone_number": "555-0100",
        "contact_phone_extension": None,
        "contact_email_address": "jordan.testperson@example.com",
        "created_at": "2026-01-05T23:30:00.000000+00:00",
        "created_date": "2026-01-05",
    }
    assert json.loads(raw_json) == json.loads(LINES[0])


def test_flatten__raw_json_is_compact_with_sorted_keys():
    raw_json = _flatten(1)["raw_json"]
    assert raw_json.startswith('{"data":{"adm":{"coverageLoss":')
    assert '", "' not in raw_json and '": ' not in raw_json
    assert list(json.loads(raw_json)) == ["data", "traceId", "type", "utcDateTime", "version"]


def test_flatten__line_3_phone_extension():
    row = _flatten(3)
    assert (row["contact_phone_number"], row["contact_phone_extension"]) == ("555-0102", "12")
    assert row["status_subtype"] == "firstNoticeOfLossReceived"
    assert row["ingested_at"] == "2026-01-05T14:10:00.000000+00:00"


def test_flatten__line_13_data_as_string_is_extracted_and_raw_json_keeps_the_string():
    row = _flatten(13)
    assert row["assignment_id"] == "A-7100460"
    assert row["claim_number"] == "CLM-TEST-000460"
    assert row["description"] == "data delivered as string"
    assert (
        row["attachments"]
        == "https://xn-exportreceiver.s3.example.com/exports/A-7100460/signed_agreement.pdf"
    )
    assert isinstance(json.loads(row["raw_json"])["data"], str)


def test_flatten__line_14_version_numeric_string_is_written_as_string():
    assert _flatten(14)["version"] == "2"


def test_flatten__line_19_trace_id_alias():
    row = _flatten(19)
    assert row["trace_id"] == "3f9b2c1e-7a44-4c1d-9e2b-0a1b2c3d4e19"
    assert row["status_subtype"] == "policyReceived"
    assert "trace_id" in json.loads(row["raw_json"])


def test_flatten__empty_list_is_empty_string_missing_list_is_null():
    assert _flatten(7)["attachments"] == ""
    assert _flatten(6)["attachments"] is None
    assert _flatten(6)["estimate_version"] == "1.0"


def test_flatten__missing_assignment_id_is_null():
    assert _flatten(8)["assignment_id"] is None


def test_flatten__event_id_is_the_one_passed_in():
    assert _flatten(2, event_id="derived")["event_id"] == "derived"


def test_flatten__unparseable_data_gives_null_data_columns():
    raw_row = {
        "type": "verisk.claims.property.xn.documentsReceived",
        "traceId": "t",
        "utcDateTime": "2026-01-05T14:02:11Z",
        "data": "{not json",
    }
    row = flatten_event(parse_xact_record(raw_row), raw_row, event_id="e", now=NOW)
    data_columns = XACT_EVENT_COLUMNS[7:28]
    assert all(row[column] is None for column in data_columns)
    assert row["version"] is None
    assert json.loads(row["raw_json"])["data"] == "{not json"


def test_flatten__non_object_intermediate_is_null_and_non_strings_become_text():
    raw_row = {
        "type": "x.y",
        "traceId": "t",
        "utcDateTime": "2026-01-05T14:02:11Z",
        "data": {
            "contact": "not an object",
            "adm": {"coverageLoss": {"claimNumber": 451}},
            "carrierId": 42,
            "note": True,
            "description": {"b": 1, "a": [1, 2]},
            "attachments": ["https://h/a.pdf", "", None, "https://h/b.pdf"],
        },
    }
    row = flatten_event(parse_xact_record(raw_row), raw_row, event_id="e", now=NOW)
    assert row["contact_name"] is None and row["contact_phone_number"] is None
    assert (row["claim_number"], row["carrier_id"], row["note"]) == ("451", "42", "true")
    assert row["description"] == '{"a":[1,2],"b":1}'
    assert row["attachments"] == "https://h/a.pdf,https://h/b.pdf"


def test_flatten__event_time_with_offset_is_converted_to_utc_date():
    raw_row = {"type": "x.y", "traceId": "t", "utcDateTime": "2026-01-05T20:00:00-07:00"}
    row = flatten_event(parse_xact_record(raw_row), raw_row, event_id="e", now=NOW)
    assert (row["ingested_at"], row["event_date"]) == ("2026-01-06T03:00:00.000000+00:00", "2026-01-06")


def test_attachment_row__columns_and_event_date_from_downloaded_at():
    row = attachment_row(
        media_id="m-1",
        trace_id="t-1",
        attachment_url="https://h/a.pdf",
        blob_path="documentsReceived/A/t-1/A_a.pdf",
        file_type="PDF",
        status_subtype="documentsReceived",
        assignment_id="A",
        bytes_downloaded=1234,
        downloaded_at=datetime(2026, 1, 5, 23, 59, 59, tzinfo=UTC),
        now=datetime(2026, 1, 6, 0, 0, 5, tzinfo=UTC),
    )
    assert tuple(row) == XACT_ATTACHMENT_COLUMNS
    assert row["event_date"] == "2026-01-05"
    assert row["downloaded_at"] == "2026-01-05T23:59:59.000000+00:00"
    assert row["created_at"] == "2026-01-06T00:00:05.000000+00:00"
    assert row["bytes_downloaded"] == 1234


def _failed(**overrides) -> dict:
    args = dict(
        media_id="m-1",
        trace_id="t-1",
        attachment_url="https://h/a.zip",
        blob_path="p/A/t-1/A_a.zip",
        status_subtype="documentsReceived",
        assignment_id="A",
        status="failed_permanent",
        error_message="File extension 'zip' not allowed",
        error_category=ErrorCategory.PERMANENT,
        http_status=None,
        retry_count=0,
        failed_at=datetime(2026, 1, 5, 12, tzinfo=UTC),
        now=NOW,
    )
    return failed_row(**{**args, **overrides})


def test_failed_row__columns_and_values():
    row = _failed()
    assert tuple(row) == XACT_ATTACHMENT_FAILED_COLUMNS
    assert row["error_category"] == "permanent"
    assert row["failed_at"] == "2026-01-05T12:00:00.000000+00:00"
    assert row["created_at"] == "2026-01-05T23:30:00.000000+00:00"
    assert row["http_status"] is None and row["retry_count"] == 0


@pytest.mark.parametrize("message", [None, "", "   "])
def test_failed_row__missing_message_defaults_to_unknown_error(message):
    assert _failed(error_message=message)["error_message"] == "Unknown error"


def test_failed_row__long_message_truncated_to_500_chars():
    message = _failed(error_message="x" * 600)["error_message"]
    assert len(message) == 500 and message.endswith("...")


def test_failed_row__rejected_at_dispatch_without_blob_path():
    row = _failed(
        status="rejected",
        blob_path=None,
        error_message="Domain not in allowlist: untrusted.example.net",
        http_status=None,
    )
    assert row["status"] == "rejected" and row["blob_path"] is None
