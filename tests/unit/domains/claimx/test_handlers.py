"""Every sample claimx event through ``handle`` against the sample-file API port (SPEC §4.3, DECISIONS)."""

from __future__ import annotations

import pytest

from core.errors import ErrorCategory, PermanentError
from domains.claimx.api_errors import ClaimXApiError
from domains.claimx.coerce import iso
from domains.claimx.handlers import EntityRows, HandlerResult, handle, handle_media_batch
from domains.claimx.models import ClaimXEvent, parse_claimx_record
from domains.names import Table
from tests.unit.domains.claimx.conftest import NOW, SampleApi, expectations, sample_lines

LINES = sample_lines()
EXPECTED = {e["line"]: e for e in expectations()}


def _event(line: int) -> ClaimXEvent:
    return parse_claimx_record(LINES[line - 1], kafka_timestamp=None)


def _expected_calls(spec: dict) -> list[str] | None:
    calls = spec.get("api") or spec.get("api_current")
    if calls is None:
        return None
    out = []
    for call in calls:
        if call.startswith("POST /data"):
            out.append(f"POST /data VIDEO_COLLABORATION {spec['project_id']}")
        else:
            out.append(call)
    return out


SUCCESS_LINES = [n for n, e in EXPECTED.items() if e.get("rows")]


@pytest.mark.parametrize("line", SUCCESS_LINES)
def test_handle__sample_line_produces_expected_row_counts_and_calls(line: int, api: SampleApi) -> None:
    spec = EXPECTED[line]
    result = handle(_event(line), api, now=NOW, cache=None)
    assert not result.skipped
    assert result.rows.counts() == spec["rows"]
    expected_calls = _expected_calls(spec)
    if expected_calls is not None:
        assert api.calls == expected_calls
    assert result.api_calls == len(api.calls)


@pytest.mark.parametrize("line", SUCCESS_LINES)
def test_handle__every_row_carries_the_event_id_and_tz_aware_timestamps(line: int, api: SampleApi) -> None:
    event = _event(line)
    result = handle(event, api, now=NOW, cache=None)
    for rows in result.rows.by_table().values():
        for row in rows:
            assert row["event_id"] == event.event_id
            assert row["updated_at"].endswith("+00:00")


def test_handle__project_created_maps_project_and_three_contacts(api: SampleApi) -> None:
    rows = handle(_event(1), api, now=NOW, cache=None).rows
    project = rows.projects[0]
    assert project["project_id"] == "5010001"
    assert project["master_file_name"] == "MFN-2026-000451"
    assert project["primary_email"] == "jordan.testperson@example.com"  # flagged primary, second in list
    assert project["primary_phone"] == "5550100" and project["primary_phone_country_code"] == 1
    assert project["year_built"] == 1998 and project["square_footage"] == 2150
    assert project["company_name"] == "Example Mutual Insurance (Test)"
    assert project["created_date"] == "2026-01-05T16:58:12+00:00"
    assert project["street2"] == "Unit 2" and project["custom_attribute3"] is None
    assert project["created_at"] == iso(NOW) and project["last_enriched_at"] == iso(NOW)
    contacts = {(c["contact_type"], c["contact_email"]): c for c in rows.contacts}
    assert set(contacts) == {
        ("POLICYHOLDER", "jordan.testperson@example.com"),
        ("CLAIM_REP", "adjuster.one@example.com"),
        ("CLAIM_REP", "desk.adjuster@example.com"),
    }
    holder = contacts[("POLICYHOLDER", "jordan.testperson@example.com")]
    assert holder["is_primary_contact"] is True and holder["first_name"] == "Jordan"
    assert holder["phone_country_code"] == 1 and holder["master_file_name"] is None
    rep = contacts[("CLAIM_REP", "adjuster.one@example.com")]
    assert rep["is_primary_contact"] is True and rep["master_file_name"] == "MFN-2026-000451"
    assert contacts[("CLAIM_REP", "desk.adjuster@example.com")]["is_primary_contact"] is False
    assert holder["created_date"] == "2026-01-05"


def test_handle__project_5010002_uses_first_email_and_has_no_phone(api: SampleApi) -> None:
    rows = handle(_event(12), api, now=NOW, cache=None).rows
    assert rows.projects[0]["primary_email"] == "taylor.demo@example.org"
    assert rows.projects[0]["primary_phone"] is None
    assert rows.projects[0]["custom_business_name"] == "Example Holdings LLC"
    assert [c["contact_email"] for c in rows.contacts] == ["taylor.demo@example.org"]
    assert rows.contacts[0]["phone_number"] is None


def test_handle__mfn_added_overrides_the_api_mfn(api: SampleApi) -> None:
    event = _event(5).model_copy(update={"master_file_name": "MFN-FROM-EVENT"})
    rows = handle(event, api, now=NOW, cache=None).rows
    assert rows.projects[0]["master_file_name"] == "MFN-FROM-EVENT"
    assert (
        handle(_event(5), api, now=NOW, cache=None).rows.projects[0]["master_file_name"]
        == (EXPECTED[5]["project_row_override"]["master_file_name"])
    )


def test_handle__media_row_maps_coordinates_expiry_and_task_assignment(api: SampleApi) -> None:
    first = handle(_event(2), api, now=NOW, cache=None).rows.media[0]
    assert first["media_id"] == "880001" and first["project_id"] == "5010001"
    assert first["latitude"] == 30.2672 and isinstance(first["longitude"], float)
    assert first["file_type"] == "jpg" and first["file_name"] == "kitchen_ceiling.jpg"
    assert first["expires_at"] == "2099-12-31T01:00:00+00:00"  # derived from X-Amz-Date + Expires
    assert first["taken_date"] == "2026-01-05T16:40:02+00:00"
    second = handle(_event(3), api, now=NOW, cache=None).rows.media[0]
    assert second["task_assignment_id"] == "7700001"  # documented key taskAssignmentID
    assert second["latitude"] is None
    assert second["expires_at"] == "2100-01-02T00:00:00+00:00"  # ClaimX systemDate + expires


def test_handle__media_row_prefers_expires_at_key_and_camel_case_assignment() -> None:
    class Port(SampleApi):
        def get_project_media(self, project_id, media_ids=None):  # type: ignore[no-untyped-def]  # the port's signature
            items = super().get_project_media(project_id, media_ids)
            return [
                {**m, "taskAssignmentID": None, "taskAssignmentId": 42, "expiresAt": "2030-01-01T00:00:00Z"}
                for m in items
            ]

    row = handle(_event(2), Port(), now=NOW, cache=None).rows.media[0]
    assert row["task_assignment_id"] == "42"
    assert row["expires_at"] == "2030-01-01T00:00:00+00:00"


def test_handle__task_event_maps_task_template_link_and_link_contact(api: SampleApi) -> None:
    rows = handle(_event(6), api, now=NOW, cache=None).rows
    task = rows.tasks[0]
    assert task["assignment_id"] == 7700001 and task["task_id"] == 45001
    assert task["project_id"] == "5010001" and task["stp_enabled"] is True
    assert task["xactimate_exportable"] is False and task["cancelled_by_resource_id"] is None
    assert task["assignor_email"] == "adjuster.one@example.com"
    assert task["task_url"] == "https://portal.example.com/tasks/7700001"
    template = rows.task_templates[0]
    assert template["task_id"] == 45001 and template["is_default"] is False
    assert template["allow_resubmit"] is True and template["modified_date"] == "2025-11-20T10:00:00+00:00"
    link = rows.external_links[0]
    assert link["link_id"] == 990001 and link["assignment_id"] == 7700001
    assert link["accessed_count"] == 0 and link["created_date"] is None
    link_contact = [c for c in rows.contacts if c["task_assignment_id"] is not None]
    assert len(link_contact) == 1
    assert link_contact[0]["task_assignment_id"] == 7700001
    assert (
        link_contact[0]["is_primary_contact"] is None
    )  # unknown to the task API; never overrides the project
    assert link_contact[0]["contact_type"] == "POLICYHOLDER"


def test_handle__policyholder_events_set_their_timestamp_on_the_project_row(api: SampleApi) -> None:
    invited = handle(_event(7), api, now=NOW, cache=None).rows.projects[0]
    joined = handle(_event(8), api, now=NOW, cache=None).rows.projects[0]
    assert invited["policyholder_invited_at"] == iso(NOW) and "policyholder_joined_at" not in invited
    assert joined["policyholder_joined_at"] == iso(NOW)


def test_handle__video_picks_the_item_of_the_event_project(api: SampleApi) -> None:
    row = handle(_event(9), api, now=NOW, cache=None).rows.video_collab[0]
    for key, value in EXPECTED[9]["video_row"].items():
        assert row[key] == value, key
    assert row["guid"] == "1e2d3c4b-5a69-4877-9665-a5b4c3d2e1f0"


def test_handle__video_with_empty_report_yields_no_video_row(api: SampleApi) -> None:
    result = handle(_event(16), api, now=NOW, cache=None)
    assert result.rows.video_collab == [] and result.rows.counts() == {"projects": 1, "contacts": 1}


def test_handle__xa_linking_emits_only_its_flag_columns_without_api(api: SampleApi) -> None:
    result = handle(_event(17), api, now=NOW, cache=None)
    assert api.calls == [] and result.api_calls == 0
    row = result.rows.projects[0]
    assert row == {
        "project_id": "5010002",
        "xa_autolink_fail": True,
        "xa_autolink_fail_at": iso(NOW),
        "event_id": _event(17).event_id,
        "updated_at": iso(NOW),
    }


def test_handle__personal_property_sets_contents_task_at_to_ingested_time(api: SampleApi) -> None:
    event = _event(18)
    result = handle(event, api, now=NOW, cache=None)
    assert not result.skipped and api.calls == []
    assert result.rows.projects == [
        {
            "project_id": "5010002",
            "contents_task_sent": True,
            "contents_task_at": "2026-01-05T17:25:00+00:00",
            "event_id": event.event_id,
            "updated_at": iso(NOW),
        }
    ]


def test_handle__conversation_succeeds_with_no_rows_and_no_calls(api: SampleApi) -> None:
    result = handle(_event(19), api, now=NOW, cache=None)
    assert result == HandlerResult(EntityRows(), api_calls=0, skipped=False)
    assert api.calls == []


def test_handle__unknown_type_is_skipped_without_calls(api: SampleApi) -> None:
    event = parse_claimx_record(
        {"eventType": "SOMETHING_NEW", "projectId": "5010001", "IngestionTime": "2026-01-05T17:00:00Z"},
        kafka_timestamp=None,
    )
    result = handle(event, api, now=NOW, cache=None)
    assert result.skipped and result.rows.is_empty and api.calls == []


def test_handle__project_404_raises_permanent_api_error(api: SampleApi) -> None:
    with pytest.raises(ClaimXApiError) as info:
        handle(_event(20), api, now=NOW, cache=None)
    assert info.value.category is ErrorCategory.PERMANENT
    assert str(info.value) == (
        "Not found (404): https://claimx-api.example.com/service/cxedirest/export/project/5099999"
    )


def test_handle__missing_media_is_permanent(api: SampleApi) -> None:
    with pytest.raises(PermanentError, match="^Media 889999 not found in API response$"):
        handle(_event(14), api, now=NOW, cache=None)


def test_handle__task_without_assignment_id_is_permanent_before_any_call(api: SampleApi) -> None:
    with pytest.raises(PermanentError, match="^Missing task_assignment_id$"):
        handle(_event(22), api, now=NOW, cache=None)
    assert api.calls == []


def test_handle__snake_case_duplicate_enriches_like_line_2(api: SampleApi) -> None:
    assert _event(21).event_id == _event(2).event_id
    assert handle(_event(21), api, now=NOW, cache=None).rows.counts() == EXPECTED[2]["rows"]


def test_by_table__maps_entities_to_table_names(api: SampleApi) -> None:
    tables = handle(_event(6), api, now=NOW, cache=None).rows.by_table()
    assert set(tables) == {
        Table.CLAIMX_PROJECTS,
        Table.CLAIMX_CONTACTS,
        Table.CLAIMX_TASKS,
        Table.CLAIMX_TASK_TEMPLATES,
        Table.CLAIMX_EXTERNAL_LINKS,
    }


# --- media batching -------------------------------------------------------------------------------


def _media_event(project: str, media: str, second: int = 0) -> ClaimXEvent:
    return parse_claimx_record(
        {
            "eventType": "PROJECT_FILE_ADDED",
            "projectId": project,
            "mediaId": media,
            "IngestionTime": f"2026-01-05T17:01:{second:02d}Z",
        },
        kafka_timestamp=None,
    )


def test_media_batch__small_group_asks_by_id_and_attaches_project_rows_to_first(api: SampleApi) -> None:
    events = [_media_event("5010001", m, i) for i, m in enumerate(["880001", "880002", "889999"])]
    out = handle_media_batch(events, api, now=NOW, cache=None)
    assert api.calls == [
        "GET /export/project/5010001/media?mediaIds=880001,880002,889999",
        "GET /export/project/5010001",
    ]
    first, second, missing = (out[e.event_id] for e in events)
    assert isinstance(first, HandlerResult) and first.rows.counts() == {
        "projects": 1,
        "contacts": 3,
        "media": 1,
    }
    assert first.api_calls == 2
    assert isinstance(second, HandlerResult) and second.rows.counts() == {"media": 1}
    assert second.api_calls == 0 and second.rows.media[0]["event_id"] == events[1].event_id
    assert isinstance(missing, PermanentError) and str(missing) == "Media 889999 not found in API response"


def test_media_batch__more_than_five_ids_fetch_the_full_list(api: SampleApi) -> None:
    ids = ["880001", "880002", "880003", "880004", "880005", "880006"]
    events = [_media_event("5010001", m, i) for i, m in enumerate(ids)]
    out = handle_media_batch(events, api, now=NOW, cache=None)
    assert api.calls[0] == "GET /export/project/5010001/media"
    found = [m for m, e in zip(ids, events, strict=True) if isinstance(out[e.event_id], HandlerResult)]
    assert found == ["880001", "880002", "880003", "880004"]


def test_media_batch__api_error_fails_every_event_of_the_group_only(api: SampleApi) -> None:
    bad = [_media_event("5099999", "1", 1), _media_event("5099999", "2", 2)]
    good = [_media_event("5010002", "880101", 3)]
    out = handle_media_batch(bad + good, api, now=NOW, cache=None)
    assert all(isinstance(out[e.event_id], ClaimXApiError) for e in bad)
    assert all(out[e.event_id].category is ErrorCategory.PERMANENT for e in bad)  # type: ignore[union-attr]  # errors, checked above
    assert isinstance(out[good[0].event_id], HandlerResult)


def test_media_batch__rejects_non_media_events(api: SampleApi) -> None:
    with pytest.raises(ValueError):
        handle_media_batch([_event(1)], api, now=NOW, cache=None)


def test_media_batch__non_numeric_media_id_fails_only_its_own_event(api: SampleApi) -> None:
    """Issue 7 item 6: the id is checked per event before grouping, so its neighbours are fetched."""
    good = [_media_event("5010001", "880001", 1), _media_event("5010001", "880002", 2)]
    bad = _media_event("5010001", "88x001", 3)
    out = handle_media_batch([good[0], bad, good[1]], api, now=NOW, cache=None)
    assert all(isinstance(out[e.event_id], HandlerResult) for e in good)
    err = out[bad.event_id]
    assert isinstance(err, ClaimXApiError) and err.category is ErrorCategory.PERMANENT
    assert api.calls[0] == "GET /export/project/5010001/media?mediaIds=880001,880002"
