"""Synthetic event generators: shape, determinism, mix, and ids the simulated API answers."""

from __future__ import annotations

import json
from collections import Counter

from simulator import synthetic
from simulator.claimx_api import DEFAULT_TOKEN, ClaimxApi
from simulator.files import expected_bytes, file_spec
from simulator.generate import claimx_events, xact_events

AUTH = f"Basic {DEFAULT_TOKEN}"


def test_xact_events__shape_like_the_samples_and_unique_trace_ids() -> None:
    rows = xact_events(200, attachments_per_event=3, file_size=777, seed=5)
    assert len(rows) == 200 and len({r["traceId"] for r in rows}) == 200
    for row in rows:
        assert set(row) == {"type", "version", "utcDateTime", "traceId", "data"}
        assert row["type"].startswith("verisk.claims.property.xn.")
        assert row["data"]["assignmentId"].startswith("A-")
        assert len(row["data"]["attachments"]) == 3
    times = [r["utcDateTime"] for r in rows]
    assert times == sorted(times) and len(set(times)) == 200


def test_xact_events__attachments_are_served_with_the_requested_size_and_valid_types() -> None:
    rows = xact_events(3, attachments_per_event=4, file_size=1500)
    for url in (u for r in rows for u in r["data"]["attachments"]):
        assert url.startswith("https://files.example.com/synthetic/")
        spec = file_spec(url)
        assert spec is not None and spec.size == 1500
        assert spec.content_type in {"application/pdf", "image/jpeg", "image/png", "application/xml"}
        assert len(expected_bytes(url)) == 1500


def test_generators__same_seed_same_rows_other_seed_other_rows() -> None:
    assert xact_events(20, seed=3) == xact_events(20, seed=3)
    assert xact_events(20, seed=3)[0]["traceId"] != xact_events(20, seed=4)[0]["traceId"]
    assert claimx_events(50, seed=3) == claimx_events(50, seed=3)
    first = {r["IngestionTime"] for r in claimx_events(100, seed=1)}
    assert first.isdisjoint(r["IngestionTime"] for r in claimx_events(100, seed=2))


def test_claimx_events__every_project_starts_with_project_created() -> None:
    rows = claimx_events(2000, projects=40, media_per_project=5)
    seen: set[str] = set()
    for row in rows:
        if row["projectId"] not in seen:
            assert row["eventType"] == "PROJECT_CREATED"
            seen.add(row["projectId"])
    assert len(seen) == 40


def test_claimx_events__mix_is_roughly_as_documented() -> None:
    rows = claimx_events(5000, projects=50)
    kinds = Counter(r["eventType"] for r in rows)
    share = {k: v / len(rows) for k, v in kinds.items()}
    assert 0.40 < share["PROJECT_FILE_ADDED"] < 0.60
    assert 0.12 < share["CUSTOM_TASK_ASSIGNED"] + share["CUSTOM_TASK_COMPLETED"] < 0.28
    video = share["VIDEO_COLLABORATION_INVITE_SENT"] + share["VIDEO_COLLABORATION_COMPLETED"]
    assert 0.05 < video < 0.15
    times = [r["IngestionTime"] for r in rows]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_claimx_events__rows_have_the_sample_columns() -> None:
    for row in claimx_events(50):
        assert set(row) == {
            "eventType",
            "projectId",
            "mediaId",
            "taskAssignmentId",
            "videoCollaborationId",
            "masterFileName",
            "IngestionTime",
        }
        assert json.loads(json.dumps(row)) == row


def test_claimx_events__every_referenced_id_is_answered_by_the_api() -> None:
    """Projects, media (by mediaIds filter), tasks and video ids all resolve on the simulated API."""
    api = ClaimxApi()
    for row in claimx_events(600, projects=12, media_per_project=7, seed=9):
        pid = row["projectId"]
        assert api.handle("GET", f"/export/project/{pid}", "", AUTH, None).status == 200
        if row["mediaId"]:
            body = json.loads(
                api.handle(
                    "GET", f"/export/project/{pid}/media", f"mediaIds={row['mediaId']}", AUTH, None
                ).body
            )
            assert [str(m["mediaID"]) for m in body["data"]] == [row["mediaId"]]
        if row["taskAssignmentId"]:
            task = api.handle(
                "GET", f"/customTasks/assignment/{row['taskAssignmentId']}", "full=true", AUTH, None
            )
            assert task.status == 200 and str(json.loads(task.body)["projectId"]) == pid
        if row["videoCollaborationId"]:
            body = json.loads(
                api.handle(
                    "POST", "/data", "", AUTH, {"reportType": "VIDEO_COLLABORATION", "projectId": int(pid)}
                ).body
            )
            assert str(body["data"][0]["videoCollaborationId"]) == row["videoCollaborationId"]
        assert synthetic.project_index(int(pid)) is not None
