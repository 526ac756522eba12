"""The default file store: a local directory, ``{root}/{domain}/{blob_path}``.

Writes go to a temporary file in ``{root}/.incoming/`` (same filesystem), are fsync-ed, then renamed
over the destination, so a reader sees either the old file or the whole new one, never a partial
file - and a writer killed mid-copy leaves its temporary file there, never in a domain folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

from core.errors import PermanentError, TransientError
from domains.names import Domain
from writers.files.paths import validate_blob_path

_COPY_BUFFER_BYTES = 1024 * 1024  # 1 MiB
INCOMING = ".incoming"


class LocalFileStore:
    """Files under ``root/{domain}/``; refuses any path that would resolve outside that folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def put_file(self, domain: Domain, blob_path: str, local_path: Path) -> str:
        """Copy ``local_path`` to the blob path (overwriting); returns the destination path."""
        destination = self._resolve(domain, blob_path)
        source = Path(local_path)
        if not source.is_file():
            raise PermanentError(f"put {domain}/{blob_path}: local file is missing")
        incoming = self.root / INCOMING
        temp = incoming / f"{uuid.uuid4().hex}.tmp"
        try:
            incoming.mkdir(parents=True, exist_ok=True)
            destination.parent.mkdir(parents=True, exist_ok=True)
            with source.open("rb") as reader, temp.open("wb") as writer:
                shutil.copyfileobj(reader, writer, _COPY_BUFFER_BYTES)
                writer.flush()
                os.fsync(writer.fileno())
            os.replace(temp, destination)
            _fsync_dir(destination.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
            raise TransientError(f"put {domain}/{blob_path}: {type(exc).__name__} ({exc.strerror})") from exc
        return str(destination)

    def exists(self, domain: Domain, blob_path: str) -> bool:
        return self._resolve(domain, blob_path).is_file()

    def read_bytes(self, domain: Domain, blob_path: str) -> bytes:
        path = self._resolve(domain, blob_path)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise PermanentError(f"read {domain}/{blob_path}: not found") from None

    def delete(self, domain: Domain, blob_path: str) -> bool:
        """Remove the file; ``False`` when it did not exist."""
        try:
            self._resolve(domain, blob_path).unlink()
        except FileNotFoundError:
            return False
        return True

    def uri(self, domain: Domain, blob_path: str) -> str:
        return str(self._resolve(domain, blob_path))

    def _resolve(self, domain: Domain, blob_path: str) -> Path:
        folder = self.root / Domain(domain).value
        validate_blob_path(blob_path)
        candidate = (folder / blob_path).resolve()
        if not candidate.is_relative_to(folder.resolve()):
            raise PermanentError(f"blob path {blob_path!r} resolves outside the {domain} folder")
        return candidate


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (best effort: not every filesystem allows opening a directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        # fsync on a directory is unsupported on some filesystems; the data file itself is synced.
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
