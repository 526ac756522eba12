"""Media download planning for claimx (SPEC §4.6 as decided in DECISIONS "claimx").

Contracts:

* :func:`media_blob_path` = ``{project_id}/media/{media_id}_{sanitised file name}``, with
  ``.{file_type lower}`` appended when the name does not already end with it (case-insensitive);
  without a name the file is ``media_{media_id}`` (+ extension). Every component is sanitised and
  the file name is capped at 255 bytes of UTF-8 (stem cut, extension kept), so two media never share
  a path and nothing escapes the project's folder.
* :func:`download_plans` returns one :class:`MediaPlan` per media row with a non-blank
  ``full_download_link``, in row order; ``file_type`` is the media row's type as the API gives it
  (``jpg``: SPEC §4.6, DECISIONS "claimx"; the upper-case rule is xact's), "" when it has none.
* :func:`refresh_media_url` asks the API for one media item and returns its fresh
  ``fullDownloadLink``; none ⇒ :class:`PermanentError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import PermanentError
from core.security.filenames import cap_filename, sanitize_component, sanitize_filename
from domains.claimx.coerce import text
from domains.claimx.entity_rows import media_id_of
from domains.claimx.ports import ApiPort


@dataclass(frozen=True)
class MediaPlan:
    """Everything the download stage needs for one media file (no bytes, no secrets beyond the URL)."""

    media_id: str
    project_id: str
    event_id: str
    url: str
    blob_path: str
    file_name: str
    file_type: str
    expires_at: str | None


def media_blob_path(project_id: str, media_id: str, file_name: str | None, file_type: str | None) -> str:
    """The lake path of a media file, relative to the claimx domain root (see module contract)."""
    project = sanitize_component(str(project_id))
    media = sanitize_component(str(media_id))
    ext = (text(file_type) or "").lower().lstrip(".")
    ext = sanitize_component(ext) if ext else ""
    raw_name = text(file_name)
    name = f"{media}_{sanitize_filename(raw_name)}" if raw_name else f"media_{media}"
    if ext and not name.lower().endswith("." + ext):
        name = f"{name}.{ext}"
    return f"{project}/media/{cap_filename(name)}"


def download_plans(media_rows: list[dict[str, Any]]) -> list[MediaPlan]:
    """One plan per media row that has a download link (see module contract)."""
    plans: list[MediaPlan] = []
    for row in media_rows:
        url = text(row.get("full_download_link"))
        media_id = text(row.get("media_id"))
        project_id = text(row.get("project_id"))
        if url is None or media_id is None or project_id is None:
            continue
        file_name = text(row.get("file_name"))
        file_type = text(row.get("file_type"))
        plans.append(
            MediaPlan(
                media_id=media_id,
                project_id=project_id,
                event_id=text(row.get("event_id")) or "",
                url=url,
                blob_path=media_blob_path(project_id, media_id, file_name, file_type),
                file_name=file_name or "",
                file_type=file_type or "",
                expires_at=text(row.get("expires_at")),
            )
        )
    return plans


def refresh_media_url(api: ApiPort, project_id: str, media_id: str) -> str:
    """A fresh ``fullDownloadLink`` for one media item (``GET …/media?mediaIds=<id>``).

    API errors propagate with their category; an answer without the item or without a link is
    permanent (there is nothing left to refresh from).
    """
    wanted = text(media_id) or ""
    for item in api.get_project_media(project_id, [wanted]):
        if media_id_of(item) == _canonical(wanted):
            link = text(item.get("fullDownloadLink"))
            if link:
                return link
            break
    raise PermanentError(f"Media {wanted} has no fresh download link in the API response")


def _canonical(media_id: str) -> str:
    return str(int(media_id)) if media_id.strip().lstrip("-").isdigit() else media_id.strip()
