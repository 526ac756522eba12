"""The message that travels down an attachment chain: download -> upload -> write(inventory).

One model for both domains, filled in stage by stage. It carries references, never payloads
(STYLE §7): the file stays on disk (``local_path``), and the download URL - which may carry a
presigned signature - stays in the URL vault, keyed by ``(domain, media_id)``. ``url_display`` is
the redacted form, safe for logs, Flower and dead letters.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from domains.names import Domain

#: Fields the stages fill in (download, upload): one run of the chain's, reset before another.
RUN_FIELDS = (
    "local_path",
    "bytes_downloaded",
    "content_type",
    "sha256",
    "downloaded_at",
    "destination",
    "uploaded_at",
)


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

    def for_new_run(self, **update: Any) -> AttachmentJob:
        """A copy with every :data:`RUN_FIELDS` field cleared, then ``update`` applied: what a
        chain re-started at ``download`` (reaper re-drive, dead-letter replay) carries."""
        return self.model_copy(update={**dict.fromkeys(RUN_FIELDS), **update})
