"""The ClaimX API as the handlers see it (a port). :class:`domains.claimx.api.ClaimXClient` implements it.

Every method either returns the parsed body or raises a :class:`domains.claimx.api_errors.ClaimXApiError`
(or another :class:`core.errors.PipelineError`) carrying its category. Ids are strings or ints;
an id that is not an integer raises a permanent error without a request.
"""

from __future__ import annotations

from typing import Any, Protocol


class ApiPort(Protocol):
    def get_project(self, project_id: str | int) -> dict[str, Any]:
        """``GET /export/project/{id}``: the body as returned."""
        ...

    def get_project_media(
        self, project_id: str | int, media_ids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """``GET /export/project/{id}/media[?mediaIds=a,b]``: the media items (unwrapped)."""
        ...

    def get_custom_task(self, assignment_id: str | int) -> dict[str, Any]:
        """``GET /customTasks/assignment/{id}?full=true``: the assignment object."""
        ...

    def get_video_collaboration(self, project_id: str | int) -> dict[str, Any] | list[Any]:
        """``POST /data`` with ``reportType=VIDEO_COLLABORATION``: the body as returned."""
        ...

    def get_project_contacts(self, project_id: str | int) -> list[dict[str, Any]]: ...

    def get_project_conversations(self, project_id: str | int) -> list[dict[str, Any]]: ...

    def get_project_tasks(self, project_id: str | int) -> list[dict[str, Any]]: ...
