"""Blob-path rules shared by every file store: a blob path never leaves its domain folder.

A valid blob path is relative, uses ``/`` as separator, and has no empty, ``.`` or ``..``
segment, no backslash, no NUL or other control character, and no segment longer than 255 bytes
of UTF-8 (DECISIONS "Security"). Anything else is refused with :class:`PermanentError`.
"""

from __future__ import annotations

from core.errors import PermanentError

MAX_SEGMENT_BYTES = 255


def validate_blob_path(blob_path: str) -> str:
    """Return ``blob_path`` unchanged when it is safe; raise :class:`PermanentError` otherwise."""
    if not isinstance(blob_path, str) or not blob_path:
        raise PermanentError("blob path is empty")
    if blob_path.startswith("/") or (len(blob_path) > 1 and blob_path[1] == ":"):
        raise PermanentError("blob path must be relative")
    if "\\" in blob_path:
        raise PermanentError("blob path must not contain a backslash")
    if any(ord(char) < 32 or ord(char) == 127 for char in blob_path):
        raise PermanentError("blob path contains a control character")
    for segment in blob_path.split("/"):
        if segment in ("", ".", ".."):
            raise PermanentError("blob path has an empty, '.' or '..' segment")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise PermanentError(f"blob path segment is longer than {MAX_SEGMENT_BYTES} bytes")
    return blob_path
