"""Deterministic ids (SPEC §1.4). The pinned values below fail CI if a namespace ever changes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from domains import ids

TRACE = "3f9b2c1e-7a44-4c1d-9e2b-0a1b2c3d4e01"
URL = "https://xn-exportreceiver.s3.example.com/exports/A-7100451/3f9b2c1e/Inspection_Report.pdf"
INGESTED = datetime(2026, 1, 5, 14, 2, 11, 120000, tzinfo=UTC)


def test_namespaces__are_the_committed_constants():
    assert str(ids.XACT_EVENT_NS) == "47fa41fa-7fe2-466a-948c-a6c7beba7870"
    assert str(ids.XACT_MEDIA_NS) == "2fd3d76c-47a4-4fad-b956-b0b256b62ea5"
    assert str(ids.CLAIMX_EVENT_NS) == "5fba475a-372f-46fc-9ba2-ea0cf797ad01"
    assert len({ids.XACT_EVENT_NS, ids.XACT_MEDIA_NS, ids.CLAIMX_EVENT_NS}) == 3


def test_xact_event_id__pinned_value_for_sample_trace():
    assert ids.xact_event_id(TRACE) == "0277fadd-4c29-5221-93fb-466e033e8a2f"


def test_xact_media_id__pinned_value_for_sample_attachment():
    assert ids.xact_media_id(TRACE, URL) == "756385a3-70bc-511f-8f63-b0a032e5cb58"


def test_claimx_event_id__pinned_values():
    assert (
        ids.claimx_event_id("5010001", "PROJECT_CREATED", INGESTED) == "9731fc7d-9aaf-5966-99e3-274e2ae45bf1"
    )
    assert (
        ids.claimx_event_id("5010001", "PROJECT_FILE_ADDED", INGESTED, media_id="880001")
        == "47ebe88e-dac9-5871-94d4-8b1f38941403"
    )


def test_xact_ids__are_uuid5_over_the_documented_names():
    assert ids.xact_event_id(TRACE) == str(uuid.uuid5(ids.XACT_EVENT_NS, TRACE))
    assert ids.xact_media_id(TRACE, URL) == str(uuid.uuid5(ids.XACT_MEDIA_NS, f"{TRACE}:{URL}"))


def test_xact_media_id__differs_per_url_and_per_trace():
    other_url = URL.replace("Inspection_Report", "roof_sketch")
    assert ids.xact_media_id(TRACE, URL) != ids.xact_media_id(TRACE, other_url)
    assert ids.xact_media_id(TRACE, URL) != ids.xact_media_id(TRACE.replace("01", "02"), URL)


def test_xact_event_id__is_stable_and_differs_from_media_namespace():
    assert ids.xact_event_id(TRACE) == ids.xact_event_id(TRACE)
    assert ids.xact_event_id(TRACE) != str(uuid.uuid5(ids.XACT_MEDIA_NS, TRACE))


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({}, "5010001|PROJECT_CREATED|2026-01-05T14:02:11.120000+00:00"),
        ({"media_id": "880001"}, "5010001|PROJECT_CREATED|2026-01-05T14:02:11.120000+00:00|media:880001"),
        (
            {"task_assignment_id": 7700001},
            "5010001|PROJECT_CREATED|2026-01-05T14:02:11.120000+00:00|task:7700001",
        ),
        (
            {"video_collaboration_id": "660001", "media_id": "880001", "task_assignment_id": "7700001"},
            "5010001|PROJECT_CREATED|2026-01-05T14:02:11.120000+00:00|media:880001|task:7700001|video:660001",
        ),
        (
            {"media_id": "", "task_assignment_id": None},
            "5010001|PROJECT_CREATED|2026-01-05T14:02:11.120000+00:00",
        ),
    ],
)
def test_claimx_event_id__key_format(kwargs, key):
    assert ids.claimx_event_id("5010001", "PROJECT_CREATED", INGESTED, **kwargs) == str(
        uuid.uuid5(ids.CLAIMX_EVENT_NS, key)
    )


@pytest.mark.parametrize(
    ("moment", "iso"),
    [
        (datetime(2026, 1, 5, 14, 2, 11, 120000, tzinfo=UTC), "2026-01-05T14:02:11.120000+00:00"),
        (datetime(2026, 1, 5, 14, 2, 11, tzinfo=UTC), "2026-01-05T14:02:11.000000+00:00"),
        (datetime(2026, 1, 5, 14, 2, 11, 120000), "2026-01-05T14:02:11.120000+00:00"),
        (
            datetime(2026, 1, 5, 16, 2, 11, 120000, tzinfo=timezone(timedelta(hours=2))),
            "2026-01-05T14:02:11.120000+00:00",
        ),
        (
            datetime(2026, 1, 4, 23, 30, tzinfo=timezone(timedelta(hours=-7))),
            "2026-01-05T06:30:00.000000+00:00",
        ),
    ],
)
def test_claimx_ingested_at_iso__utc_with_six_fraction_digits(moment, iso):
    assert ids.claimx_ingested_at_iso(moment) == iso


def test_claimx_event_id__same_instant_in_any_zone_gives_same_id():
    shifted = INGESTED.astimezone(timezone(timedelta(hours=-5)))
    naive = INGESTED.replace(tzinfo=None)
    base = ids.claimx_event_id("5010001", "PROJECT_CREATED", INGESTED)
    assert ids.claimx_event_id("5010001", "PROJECT_CREATED", shifted) == base
    assert ids.claimx_event_id("5010001", "PROJECT_CREATED", naive) == base


def test_claimx_event_id__int_and_str_project_ids_agree():
    assert ids.claimx_event_id(5010001, "PROJECT_CREATED", INGESTED, media_id=880001) == ids.claimx_event_id(
        "5010001", "PROJECT_CREATED", INGESTED, media_id="880001"
    )


def test_claimx_event_id__differs_by_microsecond_and_type():
    base = ids.claimx_event_id("5010001", "PROJECT_CREATED", INGESTED)
    assert ids.claimx_event_id("5010001", "PROJECT_CREATED", INGESTED + timedelta(microseconds=1)) != base
    assert ids.claimx_event_id("5010001", "PROJECT_MFN_ADDED", INGESTED) != base
