"""A tiny in-memory fake of the ClaimX API *port* over the sample JSON files.

It answers like the sample route table (``samples/claimx_api/index.json``) and raises the same
classified errors the real client raises (it uses the real classifier), and records every call as
``"GET /export/project/5010001/media?mediaIds=880001"`` strings so tests can assert API economy.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from domains.claimx.api_errors import classify_status
from tests.samples import SAMPLES as REPO_SAMPLES

SAMPLES = REPO_SAMPLES
API_DIR = SAMPLES / "claimx_api"
BASE = "https://claimx-api.example.com/service/cxedirest"
NOW = datetime(2026, 1, 5, 21, 0, 0, tzinfo=UTC)


class SampleApi:
    """Implements ``ApiPort`` from the sample files; unknown resources answer 404."""

    def __init__(self, api_dir: Path = API_DIR) -> None:
        self._dir = api_dir
        self.calls: list[str] = []

    def _load(self, name: str, path: str) -> Any:
        file = self._dir / name
        if not file.exists():
            raise classify_status(404, BASE + path)
        return json.loads(file.read_text())

    def get_project(self, project_id: str | int) -> dict[str, Any]:
        path = f"/export/project/{int(project_id)}"
        self.calls.append(f"GET {path}")
        if (self._dir / f"GET_export_project_{int(project_id)}.404.json").exists():
            raise classify_status(404, BASE + path)
        return self._load(f"GET_export_project_{int(project_id)}.json", path)

    def get_project_media(
        self, project_id: str | int, media_ids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        path = f"/export/project/{int(project_id)}/media"
        ids = [int(m) for m in media_ids] if media_ids else None
        self.calls.append(f"GET {path}" + (f"?mediaIds={','.join(map(str, ids))}" if ids else ""))
        if ids == [880003] and int(project_id) == 5010001:  # the more specific sample route
            return self._load("GET_export_project_5010001_media__mediaIds_880003__refreshed.json", path)[
                "data"
            ]
        items = self._load(f"GET_export_project_{int(project_id)}_media.json", path)["data"]
        return [m for m in items if ids is None or m["mediaID"] in ids]

    def get_custom_task(self, assignment_id: str | int) -> dict[str, Any]:
        path = f"/customTasks/assignment/{int(assignment_id)}"
        self.calls.append(f"GET {path}?full=true")
        return self._load(f"GET_customTasks_assignment_{int(assignment_id)}__full_true.json", path)

    def get_video_collaboration(self, project_id: str | int) -> dict[str, Any] | list[Any]:
        self.calls.append(f"POST /data VIDEO_COLLABORATION {int(project_id)}")
        return self._load(f"POST_data__VIDEO_COLLABORATION__{int(project_id)}.json", "/data")

    def get_project_contacts(self, project_id: str | int) -> list[dict[str, Any]]:
        self.calls.append(f"GET /export/project/{int(project_id)}/contacts")
        return self._load(f"GET_export_project_{int(project_id)}_contacts.json", "/contacts")["data"]

    def get_project_conversations(self, project_id: str | int) -> list[dict[str, Any]]:
        self.calls.append(f"GET /export/project/{int(project_id)}/conversations")
        return self._load(f"GET_export_project_{int(project_id)}_conversations.json", "/c")["data"]

    def get_project_tasks(self, project_id: str | int) -> list[dict[str, Any]]:
        self.calls.append(f"POST /data CUSTOM_TASK_HIGH_LEVEL {int(project_id)}")
        return self._load(f"POST_data__CUSTOM_TASK_HIGH_LEVEL__{int(project_id)}.json", "/data")["data"]


@pytest.fixture
def api() -> SampleApi:
    return SampleApi()


def sample_lines() -> list[str]:
    return (SAMPLES / "claimx_events.jsonl").read_text().splitlines()


def expectations() -> list[dict[str, Any]]:
    return json.loads((SAMPLES / "expected" / "claimx_expectations.json").read_text())["events"]
