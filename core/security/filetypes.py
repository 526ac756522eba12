"""Attachment file-type rules (SPEC §9.2, CURRENT lists) and the one file-name rule for URLs.

The file name of a URL is its last path segment when that segment has an extension, else the value
of a ``filename`` / ``file`` / ``name`` query parameter (first present, names case-insensitive), else
the last path segment. :func:`extension_from_url` and :func:`name_from_url` both follow it, so the
blob name, ``file_type`` and the download's extension check always agree (DECISIONS, xact line 16).
"""

from __future__ import annotations

from urllib.parse import SplitResult, unquote, unquote_plus, urlsplit

from core.errors import PermanentError

ALLOWED_EXTENSIONS: frozenset[str] = frozenset(
    {
        "pdf",
        "xml",
        "txt",
        "csv",
        "json",
        "html",
        "htm",
        "xls",
        "xlsx",
        "doc",
        "docx",
        "esx",
        "jpg",
        "jpeg",
        "png",
        "gif",
        "bmp",
        "tiff",
        "tif",
        "webp",
        "mov",
        "mp4",
    }
)

ALLOWED_CONTENT_TYPES: frozenset[str] = frozenset(
    {
        "application/pdf",
        "application/xml",
        "text/xml",
        "text/plain",
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/bmp",
        "image/tiff",
        "image/webp",
        "video/quicktime",
        "video/mp4",
    }
)

#: Extension -> the Content-Types it may be served as. Extensions absent here only need an allowed type.
EXTENSION_MIME: dict[str, frozenset[str]] = {
    "pdf": frozenset({"application/pdf"}),
    "xml": frozenset({"application/xml", "text/xml"}),
    "txt": frozenset({"text/plain"}),
    "jpg": frozenset({"image/jpeg"}),
    "jpeg": frozenset({"image/jpeg"}),
    "png": frozenset({"image/png"}),
    "gif": frozenset({"image/gif"}),
    "bmp": frozenset({"image/bmp"}),
    "webp": frozenset({"image/webp"}),
    "tiff": frozenset({"image/tiff"}),
    "tif": frozenset({"image/tiff"}),
    "mov": frozenset({"video/quicktime"}),
    "mp4": frozenset({"video/mp4"}),
}

_NAME_PARAMS = ("filename", "file", "name")


def extension_from_url(url: str) -> str | None:
    """Lower-case extension of the URL's file name (see module rule), without the dot; None if none."""
    parts = _split(url)
    if parts is None:
        return None
    segment_ext = _extension(unquote(_last_segment(parts)))
    if segment_ext:
        return segment_ext
    raw = _query_name(parts)
    return _extension(unquote(raw)) if raw else None


def name_from_url(url: str) -> str | None:
    """The raw (still percent-encoded) file name by the module rule, or None.

    A query-parameter value is returned as sent, except that ``+`` becomes ``%20`` so that percent-
    decoding it (as the file-name sanitiser does) yields the intended space.
    """
    parts = _split(url)
    if parts is None:
        return None
    segment = _last_segment(parts)
    if _extension(unquote(segment)):
        return segment
    raw = _query_name(parts)
    if raw:
        return raw
    return segment or None


def normalise_content_type(content_type: str | None) -> str | None:
    """``"Image/JPEG; charset=x"`` -> ``"image/jpeg"``; blank -> None."""
    if content_type is None:
        return None
    value = content_type.split(";", 1)[0].strip().lower()
    return value or None


def check_extension(ext: str | None) -> None:
    """Raise :class:`PermanentError` unless ``ext`` is an allowed extension (case-insensitive)."""
    if not ext or not ext.strip(". "):
        raise PermanentError("No file extension found")
    value = ext.strip(". ").lower()
    if value not in ALLOWED_EXTENSIONS:
        raise PermanentError(f"File extension '{value}' not allowed")


def check_content_type(ext: str, content_type: str | None) -> None:
    """Raise :class:`PermanentError` when a returned Content-Type is not allowed or contradicts ``ext``.

    A missing Content-Type passes (SPEC §3.4 step 9 only checks a returned one).
    """
    mime = normalise_content_type(content_type)
    if mime is None:
        return
    if mime not in ALLOWED_CONTENT_TYPES:
        raise PermanentError(f"Content-Type validation failed: '{mime}' is not an allowed type")
    expected = EXTENSION_MIME.get(ext.strip(". ").lower())
    if expected is not None and mime not in expected:
        raise PermanentError(
            f"Content-Type validation failed: '{mime}' does not match extension '{ext.strip('. ').lower()}'"
        )


def _split(url: str) -> SplitResult | None:
    try:
        return urlsplit(url.strip()) if url and url.strip() else None
    except ValueError:
        return None


def _last_segment(parts: SplitResult) -> str:
    return parts.path.rsplit("/", 1)[-1]


def _extension(name: str) -> str | None:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if "." not in base:
        return None
    ext = base.rsplit(".", 1)[1].strip().lower()
    return ext or None


def _query_name(parts: SplitResult) -> str | None:
    """Raw value of the first non-empty filename/file/name query parameter."""
    found: dict[str, str] = {}
    for pair in parts.query.split("&"):
        key, sep, value = pair.partition("=")
        name = unquote_plus(key).strip().lower()
        if sep and value and name in _NAME_PARAMS and name not in found:
            found[name] = value.replace("+", "%20")
    for name in _NAME_PARAMS:
        if name in found:
            return found[name]
    return None
