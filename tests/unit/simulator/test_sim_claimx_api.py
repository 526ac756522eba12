"""The simulated ClaimX API answered without sockets: sample routes, filters, auth, synthetic ids."""

from __future__ import annotations

import json
from typing import Any

import pytest

from simulator import synthetic
from simulator.claimx_api import DEFAULT_SAMPLES_DIR, DEFAULT_TOKEN, ClaimxApi, endpoint_name

AUTH = f"Basic {DEFAULT_TOKEN}"
INDEX = json.loads((DEFAULT_SAMPLES_DIR / "index.json").read_text())


@pytest.fixture(scope="module")
def api() -> ClaimxApi:
    return ClaimxApi()


def _get(api: ClaimxApi, path: str, query: str = "", auth: str | None = AUTH) -> tuple[int, Any]:
    response = api.handle("GET", path, query, auth, None)
    return response.status, json.loads(response.body)


def _post(api: ClaimxApi, body: dict[str, Any]) -> tuple[int, Any]:
    response = api.handle("POST", "/data", "", AUTH, body)
    return response.status, json.loads(response.body)


@pytest.mark.parametrize(
    "route", INDEX["routes"], ids=lambda r: f"{r['method']} {r['path']} {r.get('query', '')}"
)
def test_api__every_sample_route_answers_its_file(api: ClaimxApi, route: dict[str, Any]) -> None:
    query = "&".join(f"{k}={v}" for k, v in (route.get("query") or {}).items())
    response = api.handle(route["method"], route["path"], query, AUTH, route.get("body_match"))
    assert response.status == route["status"]
    assert json.loads(response.body) == json.loads((DEFAULT_SAMPLES_DIR / route["file"]).read_text())


def test_api__missing_or_wrong_token_is_401(api: ClaimxApi) -> None:
    assert _get(api, "/export/project/5010001", auth=None)[0] == 401
    assert _get(api, "/export/project/5010001", auth="Basic wrong")[0] == 401
    assert api.handle("GET", "/export/project/5010001", "", None, None).headers["WWW-Authenticate"]


def test_api__media_ids_filter_returns_only_listed_items(api: ClaimxApi) -> None:
    status, body = _get(api, "/export/project/5010001/media", "mediaIds=880001,880002,889999")
    assert status == 200
    assert [m["mediaID"] for m in body["data"]] == [880001, 880002]


def test_api__media_ids_880003_alone_answers_the_refreshed_link(api: ClaimxApi) -> None:
    _, body = _get(api, "/export/project/5010001/media", "mediaIds=880003")
    assert [m["mediaID"] for m in body["data"]] == [880003]
    assert "X-Amz-Date=20991231T000000Z" in body["data"][0]["fullDownloadLink"]
    _, batch = _get(api, "/export/project/5010001/media", "mediaIds=880001,880003")
    expired = next(m for m in batch["data"] if m["mediaID"] == 880003)
    assert "X-Amz-Date=20240601T120000Z" in expired["fullDownloadLink"]


def test_api__video_body_match_picks_the_project_file(api: ClaimxApi) -> None:
    _, one = _post(api, {"reportType": "VIDEO_COLLABORATION", "projectId": 5010001, "senderUsername": "a"})
    _, two = _post(api, {"reportType": "VIDEO_COLLABORATION", "projectId": 5010002})
    assert {item["claimId"] for item in one["data"]} == {5010001, 5010777}
    assert two["data"] == []


@pytest.mark.parametrize(("project", "status"), [(5010003, 503), (5010004, 429), (5010005, 401)])
def test_api__error_scenario_projects_fail_on_every_endpoint(
    api: ClaimxApi, project: int, status: int
) -> None:
    assert _get(api, f"/export/project/{project}")[0] == status
    assert _get(api, f"/export/project/{project}/media", "mediaIds=1")[0] == status
    response = api.handle("GET", f"/export/project/{project}", "", AUTH, None)
    assert ("Retry-After" in response.headers) == (status in (429, 503))


def test_api__unknown_project_task_and_endpoint_are_404(api: ClaimxApi) -> None:
    assert _get(api, "/export/project/5099999/media")[0] == 404
    assert _get(api, "/export/project/1234567")[0] == 404
    assert _get(api, "/customTasks/assignment/7799999", "full=true")[0] == 404
    assert _get(api, "/nope")[0] == 404
    assert _post(api, {"reportType": "VIDEO_COLLABORATION", "projectId": 1234567})[0] == 404


def test_api__known_sample_project_unlisted_endpoints_answer_empty(api: ClaimxApi) -> None:
    assert _get(api, "/export/project/5010002/contacts") == (200, {"data": []})
    assert _post(api, {"reportType": "CUSTOM_TASK_HIGH_LEVEL", "projectId": 5010002}) == (
        200,
        {"success": True, "data": []},
    )


def test_api__synthetic_project_media_task_and_video(api: ClaimxApi) -> None:
    pid = synthetic.project_id(4)
    status, project = _get(api, f"/export/project/{pid}")
    assert status == 200 and project["data"]["project"]["projectId"] == pid
    wanted = [synthetic.media_id(4, 0), synthetic.media_id(4, 19), synthetic.media_id(5, 0)]
    _, media = _get(api, f"/export/project/{pid}/media", "mediaIds=" + ",".join(map(str, wanted)))
    assert [m["mediaID"] for m in media["data"]] == wanted[:2]
    _, everything = _get(api, f"/export/project/{pid}/media")
    assert len(everything["data"]) == synthetic.MEDIA_SLOTS
    aid = synthetic.assignment_id(4, 3)
    status, task = _get(api, f"/customTasks/assignment/{aid}", "full=true")
    assert status == 200 and task["projectId"] == pid and task["assignmentId"] == aid
    _, video = _post(api, {"reportType": "VIDEO_COLLABORATION", "projectId": pid})
    assert video["data"][0]["videoCollaborationId"] == synthetic.video_collaboration_id(4)


def test_api__media_per_project_bounds_the_synthetic_full_list() -> None:
    api = ClaimxApi(media_per_project=3, media_bytes=999)
    _, media = _get(api, f"/export/project/{synthetic.project_id(0)}/media")
    assert len(media["data"]) == 3
    assert "/999/" in media["data"][0]["fullDownloadLink"]


@pytest.mark.parametrize(
    ("method", "path", "body", "name"),
    [
        ("GET", "/export/project/5010001", None, "GET /export/project/{id}"),
        ("GET", "/export/project/5010001/media", None, "GET /export/project/{id}/media"),
        ("GET", "/customTasks/assignment/7700001", None, "GET /customTasks/assignment/{id}"),
        ("POST", "/data", {"reportType": "VIDEO_COLLABORATION"}, "POST /data VIDEO_COLLABORATION"),
        ("POST", "/data", None, "POST /data"),
    ],
)
def test_endpoint_name__normalises_ids(
    method: str, path: str, body: dict[str, Any] | None, name: str
) -> None:
    assert endpoint_name(method, path, body) == name
