"""Blob paths and file types of xact attachments (SPEC §3.2 as amended by DECISIONS)."""

from __future__ import annotations

import json
import posixpath
from typing import Any

import pytest

from domains.ids import xact_media_id
from domains.xact.models import XactEvent, parse_xact_record
from domains.xact.paths import AttachmentPlan, plan_attachments
from tests.samples import SAMPLES

LINES = (SAMPLES / "xact_events.jsonl").read_text(encoding="utf-8").splitlines()
EXPECTED = json.loads((SAMPLES / "expected" / "xact_expectations.json").read_text(encoding="utf-8"))

# DECISIONS "How to read the samples' expected outcomes": where the expectations file records
# CURRENT behaviour this project does not follow, these values win.
_OVERRIDES: dict[tuple[int, int], dict[str, str]] = {
    (16, 0): {
        "blob_path": "firstNoticeOfLossReceived/A-7100462/3f9b2c1e-7a44-4c1d-9e2b-0a1b2c3d4e16/"
        "A-7100462_FNOL_fnol_statement.pdf",
        "file_type": "PDF",
    },
    (18, 0): {
        "blob_path": "documentsReceived/A-7100464/3f9b2c1e-7a44-4c1d-9e2b-0a1b2c3d4e18/"
        "A-7100464_water damage closeup.png",
        "file_type": "PNG",
    },
}


def _expected_attachments() -> list[Any]:
    cases = []
    for event in EXPECTED["events"]:
        for index, attachment in enumerate(event.get("attachments", [])):
            if "blob_path" not in attachment:
                continue  # rejected at ingest: no path recorded in the expectations
            want = {**attachment, **_OVERRIDES.get((event["line"], index), {})}
            cases.append(
                pytest.param(
                    event["line"],
                    want["attachment_url"],
                    want["blob_path"],
                    want["file_type"],
                    id=f"line{event['line']}-{index}",
                )
            )
    return cases


def _event(
    type_: str = "verisk.claims.property.xn.documentsReceived",
    *,
    trace_id: str = "trace-123",
    assignment_id: Any = "assignment-456",
    attachments: list[Any] | None = None,
    **data: Any,
) -> XactEvent:
    payload = {"assignmentId": assignment_id, "attachments": attachments or [], **data}
    return parse_xact_record(
        {"type": type_, "traceId": trace_id, "utcDateTime": "2026-01-05T14:02:11Z", "data": payload}
    )


def _one(event: XactEvent) -> AttachmentPlan:
    (plan,) = plan_attachments(event)
    return plan


def _assert_contained(blob_path: str) -> None:
    parts = blob_path.split("/")
    assert len(parts) == 4, blob_path
    assert all(part and part not in (".", "..") for part in parts), blob_path
    assert "\\" not in blob_path
    assert posixpath.normpath(blob_path) == blob_path
    assert all(len(part.encode("utf-8")) <= 255 for part in parts)


def test_overrides_still_point_at_the_cases_they_replace():
    """If the expectations file changes shape, the DECISIONS overrides must be revisited."""
    by_line = {event["line"]: event for event in EXPECTED["events"]}
    assert by_line[16]["attachments"][0]["file_type"] == "UNKNOWN"
    assert "%20" in by_line[18]["attachments"][0]["blob_path"]


@pytest.mark.parametrize(("line", "url", "blob_path", "file_type"), _expected_attachments())
def test_plan__every_sample_attachment_matches_expectations(line, url, blob_path, file_type):
    event = parse_xact_record(LINES[line - 1])
    plans = {plan.attachment_url: plan for plan in plan_attachments(event)}
    plan = plans[url]
    assert (plan.blob_path, plan.file_type) == (blob_path, file_type)
    assert plan.file_name == blob_path.rsplit("/", 1)[1]
    assert plan.media_id == xact_media_id(event.trace_id, url)


def test_plan__sample_plans_keep_attachment_order():
    event = parse_xact_record(LINES[16])
    assert [plan.file_name for plan in plan_attachments(event)] == [
        f"A-7100463_photo_0{n}.jpg" for n in range(1, 6)
    ]


@pytest.mark.parametrize(
    ("type_", "name", "extra", "blob_path"),
    [
        (
            "verisk.claims.property.xn.documentsReceived",
            "document.pdf",
            {},
            "documentsReceived/assignment-456/trace-123/assignment-456_document.pdf",
        ),
        (
            "verisk.claims.property.xn.firstNoticeOfLossReceived",
            "fnol_report.pdf",
            {},
            "firstNoticeOfLossReceived/assignment-456/trace-123/assignment-456_FNOL_fnol_report.pdf",
        ),
        (
            "verisk.claims.property.xn.estimatePackageReceived",
            "estimate.pdf",
            {"estimateVersion": "v2.1"},
            "estimatePackageReceived/assignment-456/trace-123/assignment-456_v2.1_estimate.pdf",
        ),
        (
            "verisk.claims.property.xn.estimatePackageReceived",
            "estimate.pdf",
            {},
            "estimatePackageReceived/assignment-456/trace-123/assignment-456_unknown_estimate.pdf",
        ),
        (
            "verisk.claims.property.xn.unknownEventType",
            "file.pdf",
            {},
            "unknownEventType/assignment-456/trace-123/assignment-456_file.pdf",
        ),
    ],
)
def test_plan__spec_3_2_examples(type_, name, extra, blob_path):
    url = f"https://files.example.com/x/{name}"
    plan = _one(_event(type_, attachments=[url], **extra))
    assert plan.blob_path == blob_path and plan.file_type == "PDF"


def test_plan__extension_is_lower_cased_type_upper_cased():
    plan = _one(_event(attachments=["https://files.example.com/IMG_1.JpEg"]))
    assert (plan.file_name, plan.file_type) == ("assignment-456_IMG_1.jpeg", "JPEG")


def test_plan__no_extension_is_unknown_and_nothing_appended():
    plan = _one(_event(attachments=["https://files.example.com/download/abc123"]))
    assert (plan.file_name, plan.file_type) == ("assignment-456_abc123", "UNKNOWN")


def test_plan__url_without_a_name_uses_unknown_stem():
    plan = _one(_event(attachments=["https://files.example.com/"]))
    assert (plan.file_name, plan.file_type) == ("assignment-456_unknown", "UNKNOWN")


def test_plan__same_url_twice_is_one_attachment():
    url = "https://files.example.com/a/photo.jpg"
    plans = plan_attachments(_event(attachments=[url, url]))
    assert [plan.file_name for plan in plans] == ["assignment-456_photo.jpg"]


def test_plan__different_urls_with_same_name_get_numbered_suffixes():
    urls = [
        "https://files.example.com/a/photo.jpg",
        "https://files.example.com/b/photo.jpg",
        "https://files.example.com/a/photo.jpg?v=2",
        "https://files.example.com/c/PHOTO.JPG",
    ]
    plans = plan_attachments(_event(assignment_id="A-1", attachments=urls))
    assert [plan.file_name for plan in plans] == [
        "A-1_photo.jpg",
        "A-1_photo_2.jpg",
        "A-1_photo_3.jpg",
        "A-1_PHOTO_4.jpg",
    ]
    assert len({plan.blob_path for plan in plans}) == 4
    assert len({plan.media_id for plan in plans}) == 4


def test_plan__suffix_skips_names_already_taken():
    urls = [
        "https://files.example.com/a/photo.jpg",
        "https://files.example.com/a/photo_2.jpg",
        "https://files.example.com/b/photo.jpg",
    ]
    names = [plan.file_name for plan in plan_attachments(_event(assignment_id="A-1", attachments=urls))]
    assert names == ["A-1_photo.jpg", "A-1_photo_2.jpg", "A-1_photo_3.jpg"]


def test_plan__collisions_without_extension_get_suffix_at_the_end():
    urls = ["https://files.example.com/a/blob", "https://files.example.com/b/blob"]
    names = [plan.file_name for plan in plan_attachments(_event(assignment_id="A-1", attachments=urls))]
    assert names == ["A-1_blob", "A-1_blob_2"]


@pytest.mark.parametrize(
    ("url", "file_name", "file_type"),
    [
        ("https://files.example.com/x/..%2F..%2Fetc%2Fpasswd", "A-1_passwd", "UNKNOWN"),
        ("https://files.example.com/x/%2e%2e", "A-1_attachment", "UNKNOWN"),
        ("https://files.example.com/x/%2e%2e%2f%2e%2e%2fsecret.pdf", "A-1_secret.pdf", "PDF"),
        ("https://files.example.com/x/..%5C..%5Cwin.ini", "A-1_win.ini", "INI"),
        ("https://files.example.com/x/a\\..\\..\\evil.pdf", "A-1_evil.pdf", "PDF"),
        ("https://files.example.com/dl?filename=..%2F..%2Fevil.pdf", "A-1_evil.pdf", "PDF"),
        ("https://files.example.com/dl?filename=..\\..\\evil.pdf", "A-1_evil.pdf", "PDF"),
    ],
)
def test_plan__traversal_in_url_names_stays_in_the_folder(url, file_name, file_type):
    plan = _one(_event(assignment_id="A-1", attachments=[url]))
    assert (plan.file_name, plan.file_type) == (file_name, file_type)
    assert plan.blob_path == f"documentsReceived/A-1/trace-123/{file_name}"
    _assert_contained(plan.blob_path)


@pytest.mark.parametrize(
    ("assignment_id", "folder", "file_name"),
    [
        ("../x", "_x", "_x_photo.jpg"),
        ("..\\..\\x", "_.._x", "_.._x_photo.jpg"),
        ("a/b", "a_b", "a_b_photo.jpg"),
        ("..", "unknown", "_photo.jpg"),
    ],
)
def test_plan__traversal_in_assignment_id_stays_in_the_folder(assignment_id, folder, file_name):
    plan = _one(_event(assignment_id=assignment_id, attachments=["https://files.example.com/photo.jpg"]))
    assert plan.blob_path == f"documentsReceived/{folder}/trace-123/{file_name}"
    _assert_contained(plan.blob_path)


@pytest.mark.parametrize(
    ("type_", "folder"),
    [
        ("verisk.claims.property.xn.a/../../b", "_b"),  # subtype = text after the last dot: "/b"
        ("verisk.claims.property.xn.a\\b", "a_b"),
        ("verisk.claims.property.xn.", "unknown"),
        ("verisk.claims.property.xn...", "unknown"),
        ("..\\..\\x", "_x"),
    ],
)
def test_plan__traversal_in_status_subtype_stays_in_the_folder(type_, folder):
    plan = _one(_event(type_, attachments=["https://files.example.com/photo.jpg"]))
    assert plan.blob_path.split("/")[0] == folder
    _assert_contained(plan.blob_path)


def test_plan__traversal_in_trace_id_and_estimate_version_stays_in_the_folder():
    plan = _one(
        _event(
            "verisk.claims.property.xn.estimatePackageReceived",
            trace_id="../../etc",
            estimateVersion="../../v1",
            attachments=["https://files.example.com/e.pdf"],
        )
    )
    assert plan.blob_path == "estimatePackageReceived/assignment-456/_.._etc/assignment-456_.._.._v1_e.pdf"
    _assert_contained(plan.blob_path)


def test_plan__long_multibyte_name_is_capped_to_255_bytes_keeping_extension():
    url = "https://files.example.com/x/" + "%E6%B0%B4" * 300 + ".jpg"  # 300 × "水"
    plan = _one(_event(assignment_id="A-1", attachments=[url]))
    encoded = plan.file_name.encode("utf-8")
    assert len(encoded) <= 255 and len(encoded) > 250
    assert plan.file_name.startswith("A-1_水") and plan.file_name.endswith("水.jpg")
    assert plan.file_type == "JPG"
    _assert_contained(plan.blob_path)


def test_plan__long_names_that_collide_after_capping_still_get_distinct_names():
    stem = "%C3%A9" * 200  # 200 × "é"
    urls = [f"https://files.example.com/a/{stem}x.pdf", f"https://files.example.com/b/{stem}y.pdf"]
    plans = plan_attachments(_event(assignment_id="A-1", attachments=urls))
    first, second = (plan.file_name for plan in plans)
    assert first != second and second.endswith("_2.pdf")
    assert all(len(name.encode("utf-8")) <= 255 for name in (first, second))


def test_plan__decoded_name_from_path():
    plan = _one(_event(assignment_id="A-1", attachments=["https://files.example.com/x/a%20b%2Bc.pdf"]))
    assert plan.file_name == "A-1_a b+c.pdf"


def test_plan__requires_assignment_id():
    with pytest.raises(ValueError, match="assignmentId"):
        plan_attachments(_event(assignment_id=None, attachments=["https://files.example.com/a.pdf"]))


def test_plan__no_attachments_plans_nothing():
    assert plan_attachments(_event(attachments=[])) == []
