"""The file-store interface (STYLE §9: each external dependency behind a small interface)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from domains.names import Domain


@runtime_checkable
class FileStore(Protocol):
    """Contract every store keeps.

    * ``blob_path`` is relative to the domain's root; an absolute path, a ``..``/``.``/empty
      segment or a backslash is refused with ``PermanentError`` before any I/O.
    * ``put_file`` overwrites (idempotent) and returns the full destination URI/path.
    * ``read_bytes`` of a missing file raises ``PermanentError``; ``exists`` returns ``False``.
    * ``delete`` returns whether a file was removed.
    * Failures are classified ``PipelineError``s (transient / auth / permanent).
    """

    def put_file(self, domain: Domain, blob_path: str, local_path: Path) -> str: ...

    def exists(self, domain: Domain, blob_path: str) -> bool: ...

    def read_bytes(self, domain: Domain, blob_path: str) -> bytes: ...

    def delete(self, domain: Domain, blob_path: str) -> bool: ...
