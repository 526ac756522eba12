"""The message that travels down an attachment chain: download -> upload -> write(inventory).

One model for both domains, filled in stage by stage. It carries references, never payloads
(STYLE §7): the file stays on disk (``local_path``), and the download URL - which may carry a
presigned signature - stays in the URL vault, keyed by ``(domain, media_id)``. ``url_display`` is
the redacted form, safe for logs, Flower and dead letters.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from domains.names import Domain


class AttachmentJob(BaseModel):
    domain: Domain
    media_id: str
    event_id: str
    url_display: str
    blob_path: str
    file_name: str
    file_type: str
    check_expiry: bool = True
    refresh_count: int = 0
    context: dict[str, str | None] = Field(default_factory=dict)
    """Domain fields the inventory row needs (xact: trace_id, assignment_id, status_subtype;
    claimx: project_id)."""

    # Filled by the download stage.
    local_path: str | None = None
    bytes_downloaded: int | None = None
    content_type: str | None = None
    sha256: str | None = None
    downloaded_at: datetime | None = None
    # Filled by the upload stage.
    destination: str | None = None
    uploaded_at: datetime | None = None

    def vault_key(self) -> str:
        return f"{self.domain.value}:{self.media_id}"
