"""The download cache: where an attachment waits between ``download`` and ``upload``.

Contracts (issue 7, items 8 and 11):

* **Private root.** :func:`prepare_root` creates the cache root with mode ``0700``. An existing root
  must be a real directory (not a symlink) owned by this process's user; a looser mode is tightened
  to ``0700``. Anything else is a :class:`~core.errors.ConfigError`: another user could read or swap
  the files waiting for upload.
* **Names the pipeline controls.** :func:`cache_file` is
  ``{root}/{domain}/{sha256(domain:media_id)[:32]}/{sha256(run_id)[:16]}/file``. Neither an
  attachment's name nor an id from an API becomes a path component, so a cached path cannot leave
  the root (``..``, separators, NUL) and its length does not depend on the input (a 255-byte
  attachment name used to become ``name.part``, which the file system refuses).
* **File-system errors by meaning.** :func:`os_error` turns an :class:`OSError` into a classified
  error whose message names the errno, never the path (a local path must not reach a table or a
  dead letter).
* **Integrity.** :func:`file_sha256` / :func:`verify_sha256` re-check a cached file against the
  digest taken while it was downloaded.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from pathlib import Path

from core.errors import ConfigError, PermanentError, PipelineError, TransientError

#: The one file name used inside a cache folder; the downloader writes ``file.part`` first.
CACHE_FILE_NAME = "file"
PRIVATE_MODE = 0o700
_DOMAIN = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_READ_BYTES = 1024 * 1024

# Why each errno is permanent: retrying the same work item on the same host fails the same way,
# so an hour of retries only delays the dead letter an operator has to act on anyway.
#   ENAMETOOLONG / EINVAL / EILSEQ: the name itself is refused (cannot happen with the names above
#     unless CACHE_DIR is absurdly deep - a configuration error).
#   EFBIG: the file is larger than the file system allows.
#   EROFS / EACCES / EPERM: the cache is read-only or forbidden (SPEC §3.4 step 8): a host
#     configuration error that needs a person; the dead letter can be replayed once it is fixed.
# Everything else is transient, notably ENOSPC / EDQUOT: a full cache is drained by the upload
# stage (it deletes each file it stored), so the same download succeeds minutes later. SPEC §3.4
# made ENOSPC permanent; a short full-disk episode then dead-lettered every attachment in flight
# (docs/architecture.md "Download cache").
_PERMANENT_ERRNOS = frozenset(
    {
        errno.ENAMETOOLONG,
        errno.EINVAL,
        errno.EILSEQ,
        errno.EFBIG,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
    }
)


def prepare_root(root: Path) -> Path:
    """Create (``0700``) or check the cache root; return it resolved. See the module contract."""
    root = Path(root)
    try:
        root.mkdir(mode=PRIVATE_MODE, parents=True, exist_ok=True)
        info = os.lstat(root)
    except OSError as exc:
        raise ConfigError(f"CACHE_DIR cannot be created: {_errno_text(exc)}") from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise ConfigError("CACHE_DIR must be a directory, not a symbolic link or a file")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise ConfigError("CACHE_DIR is owned by another user; use a private directory")
    if stat.S_IMODE(info.st_mode) & 0o077:
        try:
            os.chmod(root, PRIVATE_MODE)
        except OSError as exc:
            raise ConfigError(f"CACHE_DIR permissions cannot be made private: {_errno_text(exc)}") from None
    return root.resolve()


def cache_file(root: Path, domain: str, media_id: str, run_id: str, *, create: bool = True) -> Path:
    """The cache path of one download run (module contract); its folders are created ``0700``.

    ``run_id`` (the download task's id, stable across its retries) keeps two chains of one media
    id from sharing a file. Raises a classified :class:`PipelineError` when a folder cannot be made.
    """
    if not _DOMAIN.fullmatch(domain):
        raise PermanentError("cache: invalid domain name")
    base = prepare_root(root) if create else Path(root).resolve()
    media_key = hashlib.sha256(f"{domain}:{media_id}".encode()).hexdigest()[:32]
    run_key = hashlib.sha256(str(run_id).encode()).hexdigest()[:16]
    folder = base / domain / media_key / run_key
    if create:
        try:  # one level at a time: ``parents=True`` would give the parents the default mode
            for level in (base / domain, base / domain / media_key, folder):
                level.mkdir(mode=PRIVATE_MODE, exist_ok=True)
        except OSError as exc:
            raise os_error(exc, "Cache folder error") from None
    return folder / CACHE_FILE_NAME


def is_inside(root: Path, path: Path | str) -> bool:
    """True when ``path`` resolves to a place strictly inside the cache root."""
    base = Path(root).resolve()
    candidate = Path(path).resolve()
    return candidate != base and candidate.is_relative_to(base)


def tidy(path: Path, root: Path) -> None:
    """Remove the cached file and its now-empty run and media folders (best effort)."""
    base = Path(root).resolve()
    try:
        path.unlink(missing_ok=True)
    except OSError:
        return
    for folder in (path.parent, path.parent.parent):
        if folder == base or not folder.is_relative_to(base):
            return
        try:
            folder.rmdir()
        except OSError:  # not empty (another run of this media) or already gone
            return


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_READ_BYTES):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str | None) -> None:
    """Raise :class:`PermanentError` unless the file's sha256 equals ``expected``.

    A mismatch means the cached file changed after it was downloaded (another process, a bad
    disk): storing it would record bytes nobody fetched. Replaying the dead letter downloads again.
    """
    if not expected:
        raise PermanentError("Cached file has no checksum on record; replay re-downloads it")
    try:
        actual = file_sha256(path)
    except OSError as exc:
        raise os_error(exc, "Cache read error") from None
    if actual != expected.lower():
        raise PermanentError("Cached file changed after download (sha256 mismatch); replay re-downloads it")


def os_error(exc: OSError, what: str = "File write error") -> PipelineError:
    """``exc`` as a classified error (see ``_PERMANENT_ERRNOS``); the message never names a path."""
    cls: type[PipelineError] = PermanentError if exc.errno in _PERMANENT_ERRNOS else TransientError
    return cls(f"{what}: {_errno_text(exc)}")


def _errno_text(exc: OSError) -> str:
    """``ENAMETOOLONG (File name too long)``: the errno and its meaning, without the file name."""
    name = errno.errorcode.get(exc.errno or 0, "") if exc.errno is not None else ""
    reason = exc.strerror or type(exc).__name__
    return f"{name} ({reason})" if name else reason
