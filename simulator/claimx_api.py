"""The simulated ClaimX REST API: sample routes, synthetic ids, auth (no sockets; the server calls it).

Requests are answered, in this order:

1. ``Authorization`` must be ``Basic <token>`` (the configured token) — else 401.
2. Sample error scenarios of ``index.json`` (projects 5010003 → 503, 5010004 → 429 with
   ``Retry-After``, 5010005 → 401) apply to every endpoint of that project.
3. Sample routes of ``index.json``, most specific first (a ``query`` or ``body_match`` route beats a
   plain one). A plain media route applies the ``mediaIds`` filter (unknown ids silently omitted);
   the ``mediaIds=880003`` route answers the refreshed link.
4. Synthetic ids (see :mod:`simulator.synthetic`).
5. Other endpoints of a known sample project answer empty lists; everything else is 404.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from simulator import synthetic

API_HOST = "claimx-api.example.com"
API_PATH = "/service/cxedirest"
API_PREFIX = f"/{API_HOST}{API_PATH}"
DEFAULT_TOKEN = "dGVzdDp0ZXN0"
DEFAULT_SAMPLES_DIR = Path(__file__).resolve().parents[1] / "samples" / "claimx_api"

_PROJECT_RE = re.compile(r"^/export/project/(\d+)(?:/(media|contacts|conversations))?/?$")
_TASK_RE = re.compile(r"^/customTasks/assignment/(\d+)/?$")
_DIGITS_RE = re.compile(r"/\d+(?=/|$)")


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass(frozen=True)
class _Route:
    method: str
    path: str
    status: int
    body: Any
    query: dict[str, str]
    body_match: dict[str, Any]

    @property
    def specificity(self) -> int:
        return len(self.query) + len(self.body_match)

    def matches(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> bool:
        return (
            method == self.method
            and path == self.path
            and all(query.get(k) == str(v) for k, v in self.query.items())
            and all(str(body.get(k)) == str(v) for k, v in self.body_match.items())
        )


def endpoint_name(method: str, rel_path: str, body: dict[str, Any] | None = None) -> str:
    """Normalised endpoint for counters: ``GET /export/project/{id}/media``, ``POST /data VIDEO_COLLABORATION``."""
    name = f"{method} {_DIGITS_RE.sub('/{id}', rel_path.rstrip('/') or '/')}"
    if rel_path.rstrip("/") == "/data" and body and body.get("reportType"):
        name += f" {body['reportType']}"
    return name


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> ApiResponse:
    return ApiResponse(status, json.dumps(payload).encode(), headers or {})


def _not_found(message: str) -> ApiResponse:
    return _json(404, {"status": 404, "error": "Not Found", "message": message})


def _media_ids(query: dict[str, str]) -> list[int] | None:
    if "mediaIds" not in query:
        return None
    return [int(part) for part in query["mediaIds"].split(",") if part.strip().isdigit()]


class ClaimxApi:
    """Answers API requests given the path relative to the API base (``/export/project/1``)."""

    def __init__(
        self,
        samples_dir: Path = DEFAULT_SAMPLES_DIR,
        *,
        token: str = DEFAULT_TOKEN,
        media_bytes: int = 2048,
        media_per_project: int = synthetic.MEDIA_SLOTS,
    ) -> None:
        self._token = token
        self._media_bytes = media_bytes
        self._media_per_project = media_per_project
        self._routes, self._errors = self._load(Path(samples_dir))
        self._sample_projects = {
            int(m.group(1))
            for r in self._routes
            if r.status == 200 and (m := _PROJECT_RE.match(r.path)) and not m.group(2)
        }

    @staticmethod
    def _load(samples_dir: Path) -> tuple[list[_Route], dict[int, tuple[int, str]]]:
        index = json.loads((samples_dir / "index.json").read_text())
        routes = [
            _Route(
                method=r["method"].upper(),
                path=r["path"],
                status=int(r["status"]),
                body=json.loads((samples_dir / r["file"]).read_text()) if r.get("file") else {},
                query={k: str(v) for k, v in (r.get("query") or {}).items()},
                body_match=dict(r.get("body_match") or {}),
            )
            for r in index["routes"]
        ]
        routes.sort(key=lambda r: -r.specificity)
        errors: dict[int, tuple[int, str]] = {}
        for scenario in index.get("error_scenarios", []):
            match = _PROJECT_RE.match(scenario["path"])
            if match:
                errors[int(match.group(1))] = (int(scenario["status"]), scenario.get("expect", ""))
        return routes, errors

    def authorized(self, authorization: str | None) -> bool:
        return authorization == f"Basic {self._token}"

    def handle(
        self,
        method: str,
        rel_path: str,
        query_string: str,
        authorization: str | None,
        body: dict[str, Any] | None,
    ) -> ApiResponse:
        """The response to one API request. ``body`` is the parsed JSON body (POST) or ``None``."""
        if not self.authorized(authorization):
            return _json(
                401,
                {"status": 401, "error": "Unauthorized", "message": "Missing or invalid credentials"},
                {"WWW-Authenticate": 'Basic realm="claimx"'},
            )
        query = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
        body = body or {}
        project = self._project_of(rel_path, body)
        if project is not None and project in self._errors:
            return self._error_scenario(project)
        for route in self._routes:
            if route.matches(method, rel_path.rstrip("/") or "/", query, body):
                return self._from_route(route, query)
        return self._synthetic(method, rel_path, query, body, project)

    @staticmethod
    def _project_of(rel_path: str, body: dict[str, Any]) -> int | None:
        match = _PROJECT_RE.match(rel_path)
        if match:
            return int(match.group(1))
        if rel_path.rstrip("/") == "/data" and str(body.get("projectId", "")).isdigit():
            return int(body["projectId"])
        return None

    def _error_scenario(self, project: int) -> ApiResponse:
        status, reason = self._errors[project]
        headers = {"Retry-After": "1"} if status in (429, 503) else {}
        return _json(status, {"status": status, "error": "Simulated error", "message": reason}, headers)

    @staticmethod
    def _from_route(route: _Route, query: dict[str, str]) -> ApiResponse:
        payload = route.body
        ids = _media_ids(query)
        if route.path.endswith("/media") and not route.query and ids is not None:
            wanted = set(ids)
            payload = {**payload, "data": [m for m in payload.get("data", []) if m.get("mediaID") in wanted]}
        return _json(route.status, payload)

    def _synthetic(
        self, method: str, rel_path: str, query: dict[str, str], body: dict[str, Any], project: int | None
    ) -> ApiResponse:
        task = _TASK_RE.match(rel_path)
        if method == "GET" and task:
            aid = int(task.group(1))
            if synthetic.assignment_owner(aid) is None or query.get("full") != "true":
                return _not_found(f"Task assignment {aid} was not found")
            return _json(200, synthetic.task_body(aid))
        if project is None:
            return _not_found(f"No such endpoint: {method} {rel_path}")
        if synthetic.project_index(project) is None and project not in self._sample_projects:
            return _not_found(f"Project {project} was not found")
        return self._project_endpoint(method, rel_path, query, body, project)

    def _project_endpoint(
        self, method: str, rel_path: str, query: dict[str, str], body: dict[str, Any], project: int
    ) -> ApiResponse:
        is_synthetic = synthetic.project_index(project) is not None
        match = _PROJECT_RE.match(rel_path)
        if method == "GET" and match:
            sub = match.group(2)
            if sub is None:
                return _json(200, synthetic.project_body(project))  # sample projects matched a route
            if sub == "media" and is_synthetic:
                return _json(
                    200,
                    synthetic.media_body(
                        project,
                        _media_ids(query),
                        size_bytes=self._media_bytes,
                        media_per_project=self._media_per_project,
                    ),
                )
            return _json(200, {"data": []})
        if method == "POST" and rel_path.rstrip("/") == "/data":
            if is_synthetic and body.get("reportType") == "VIDEO_COLLABORATION":
                return _json(200, synthetic.video_body(project))
            return _json(200, {"success": True, "data": []})
        return _not_found(f"No such endpoint: {method} {rel_path}")
