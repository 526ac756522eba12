"""The file-store interface (STYLE §9: each external dependency behind a small interface)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from core.errors import PermanentError
from domains.names import Domain


class BlobExists(PermanentError):
    """``put_file(overwrite=False)`` found a blob at the path already (nothing was written)."""


@runtime_checkable
class FileStore(Protocol):
    """Contract every store keeps.

    * ``blob_path`` is relative to the domain's root; an absolute path, a ``..``/``.``/empty
      segment or a backslash is refused with ``PermanentError`` before any I/O.
    * ``put_file`` overwrites (idempotent) and returns the full destination URI/path. With
      ``overwrite=False`` it refuses an existing blob with :class:`BlobExists`, atomically (the
      local store links, OneLake creates with ``If-None-Match: *``). With ``sha256`` it refuses a
      local file whose content does not have that digest (``PermanentError``) and publishes
      nothing. The digest is taken from the bytes being published, in the same pass (OneLake:
      before the flush commits them, deleting the file it created or truncated; local: while the
      temporary file is fsynced), never by a separate read first.
    * ``sha256`` is the hex digest of a stored blob, ``None`` when there is none.
    * ``read_bytes`` of a missing file raises ``PermanentError``; ``exists`` returns ``False``.
    * ``delete`` returns whether a file was removed.
    * Failures are classified ``PipelineError``s (transient / auth / permanent).
    """

    def put_file(
        self,
        domain: Domain,
        blob_path: str,
        local_path: Path,
        *,
        overwrite: bool = True,
        sha256: str | None = None,
    ) -> str: ...

    def sha256(self, domain: Domain, blob_path: str) -> str | None: ...

    def uri(self, domain: Domain, blob_path: str) -> str: ...

    def exists(self, domain: Domain, blob_path: str) -> bool: ...

    def read_bytes(self, domain: Domain, blob_path: str) -> bytes: ...

    def delete(self, domain: Domain, blob_path: str) -> bool: ...
