"""The default file store: a local directory, ``{root}/{domain}/{blob_path}``.

Writes go to a temporary file in ``{root}/.incoming/`` (same filesystem), are fsync-ed, then renamed
over the destination, so a reader sees either the old file or the whole new one, never a partial
file - and a writer killed mid-copy leaves its temporary file there, never in a domain folder.

The bytes never pass through Python (issue 9): when the cached file and the lake are on one file
system the temporary file is a **hard link** to the cached file (no copy at all: the download
already wrote the bytes once); otherwise the kernel copies them (``copy_file_range``, which may
share extents on btrfs/XFS, else ``sendfile``). A digest to check (``sha256``) is re-read from the
temporary file - the bytes that will be published - in a thread while the main thread fsyncs it,
so the check costs no extra wall time on a large file (both wait on different resources).
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from core.cache import file_sha256
from core.errors import PermanentError, TransientError
from domains.names import Domain
from writers.files.base import BlobExists
from writers.files.paths import validate_blob_path

_COPY_BUFFER_BYTES = 1024 * 1024  # 1 MiB, the last-resort copy only
_KERNEL_STEP_BYTES = 1 << 30  # per copy_file_range / sendfile call; the loop runs to EOF
_INLINE_DIGEST_BYTES = 4 * 1024 * 1024
# A hard link is impossible here: another file system, or one without (enough) hard links.
_NO_LINK_ERRNOS = frozenset({errno.EXDEV, errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.EACCES})
# The kernel cannot copy between these two files (old kernel, cross-file-system, special files).
_NO_KERNEL_COPY_ERRNOS = frozenset({errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF})
INCOMING = ".incoming"


class LocalFileStore:
    """Files under ``root/{domain}/``; refuses any path that would resolve outside that folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def put_file(
        self,
        domain: Domain,
        blob_path: str,
        local_path: Path,
        *,
        overwrite: bool = True,
        sha256: str | None = None,
    ) -> str:
        """Copy ``local_path`` to the blob path; returns the destination path (FileStore contract).

        The temporary file is a hard link to ``local_path`` or a kernel copy of it (module doc).
        The digest is taken from that temporary file, i.e. from the bytes actually published, so
        a cached file that changes after the check cannot slip through. While the cached file
        and the published one share an inode (between the link and the upload stage's clean-up)
        an in-place write to the cached file would show in the lake: nothing writes in place
        (the downloader writes ``file.part`` and renames it), and the cache folder is private.
        """
        destination = self._resolve(domain, blob_path)
        source = Path(local_path)
        if not source.is_file():
            raise PermanentError(f"put {domain}/{blob_path}: local file is missing")
        incoming = self.root / INCOMING
        temp = incoming / f"{uuid.uuid4().hex}.tmp"
        try:
            incoming.mkdir(parents=True, exist_ok=True)
            destination.parent.mkdir(parents=True, exist_ok=True)
            stage_durably(source, temp)
            digest = _sync_and_digest(temp, want_digest=sha256 is not None)
            if sha256 is not None and digest != sha256.lower():
                raise PermanentError(
                    f"put {domain}/{blob_path}: cached file changed after download (sha256 mismatch)"
                )
            if overwrite:
                os.replace(temp, destination)
            else:
                _link_new(temp, destination, f"{domain}/{blob_path}")
            _fsync_dir(destination.parent)
        except OSError as exc:
            raise TransientError(f"put {domain}/{blob_path}: {type(exc).__name__} ({exc.strerror})") from exc
        finally:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
        return str(destination)

    def sha256(self, domain: Domain, blob_path: str) -> str | None:
        path = self._resolve(domain, blob_path)
        try:
            return file_sha256(path) if path.is_file() else None
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TransientError(f"read {domain}/{blob_path}: {type(exc).__name__} ({exc.strerror})") from exc

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


def stage_durably(source: Path, temp: Path) -> str:
    """Make ``temp`` (a new name) hold ``source``'s bytes without reading them into Python.

    Returns ``"link"`` (same file system: a hard link, no copy) or ``"copy"`` (a kernel copy).
    The caller fsyncs ``temp`` (:func:`_sync_and_digest`).
    """
    try:
        os.link(source, temp)
        return "link"
    except OSError as exc:
        if exc.errno not in _NO_LINK_ERRNOS:
            raise
    with source.open("rb") as reader, temp.open("xb") as writer:
        kernel_copy(reader.fileno(), writer.fileno())
    return "copy"


def kernel_copy(src_fd: int, dst_fd: int) -> int:
    """Copy ``src_fd`` from its position to its end into ``dst_fd``; returns the bytes copied.

    ``copy_file_range`` first (in-kernel, may reflink), then ``sendfile``, then a plain buffered
    copy when neither is supported between these two files (the first call fails before any
    byte moved, so falling back never duplicates data).
    """
    for step in (_copy_file_range, _sendfile):
        try:
            return _copy_loop(step, src_fd, dst_fd)
        except _Unsupported:
            continue
    copied = 0
    while block := os.read(src_fd, _COPY_BUFFER_BYTES):
        copied += os.write(dst_fd, block)
    return copied


class _Unsupported(Exception):
    """The first call of a kernel copy primitive refused these two files."""


def _copy_file_range(src_fd: int, dst_fd: int, count: int) -> int:
    return os.copy_file_range(src_fd, dst_fd, count)


def _sendfile(src_fd: int, dst_fd: int, count: int) -> int:
    return os.sendfile(dst_fd, src_fd, None, count)


def _copy_loop(step: Callable[[int, int, int], int], src_fd: int, dst_fd: int) -> int:
    copied = 0
    while True:
        try:
            n = step(src_fd, dst_fd, _KERNEL_STEP_BYTES)
        except (AttributeError, OSError) as exc:  # AttributeError: not on this platform
            errno_ = getattr(exc, "errno", None)
            if copied == 0 and (isinstance(exc, AttributeError) or errno_ in _NO_KERNEL_COPY_ERRNOS):
                raise _Unsupported from exc
            raise
        if n == 0:
            return copied
        copied += n


def _sync_and_digest(path: Path, *, want_digest: bool) -> str | None:
    """fsync ``path``; with ``want_digest``, its sha256 read in a thread meanwhile (module doc)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if not want_digest:
            os.fsync(fd)
            return None
        if os.fstat(fd).st_size <= _INLINE_DIGEST_BYTES:  # a thread costs more than it saves
            os.fsync(fd)
            return file_sha256(path)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="put-digest") as pool:
            digest = pool.submit(file_sha256, path)
            os.fsync(fd)
            return digest.result()
    finally:
        os.close(fd)


def _link_new(temp: Path, destination: Path, label: str) -> None:
    """Publish ``temp`` at ``destination`` only if nothing is there: a hard link is atomic and
    fails with ``EEXIST``. A file system without hard links falls back to check-then-rename."""
    try:
        os.link(temp, destination)
        return
    except FileExistsError:
        raise BlobExists(f"put {label}: a blob is already stored at this path") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
    if destination.exists():
        raise BlobExists(f"put {label}: a blob is already stored at this path")
    os.replace(temp, destination)


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
