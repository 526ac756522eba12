"""File-name sanitising and length capping (SPEC §9.3, DECISIONS "Security and robustness").

Contracts:

* :func:`sanitize_filename` turns any untrusted name (a URL's last segment, an API ``mediaName``)
  into a single, safe path component: never empty, never ``.``/``..``, never containing ``/`` or
  ``\\``, at most 255 bytes of UTF-8.
* :func:`sanitize_component` does the same for a folder component that is an identifier
  (assignment id, status subtype, trace id): same character rules, but no URL-decoding and no
  basename, so ``A/1`` stays recognisable as ``A_1`` instead of collapsing to ``1``.
* :func:`cap_filename` cuts the *stem* so the UTF-8 length fits, keeping an extension of at most
  10 characters and never splitting a multi-byte character.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

#: Largest file name (any prefix included) the lake accepts, in bytes of UTF-8.
MAX_NAME_BYTES = 255
#: Extensions longer than this are not treated as extensions when capping.
MAX_EXT_CHARS = 10
#: What an untrusted file name becomes when nothing usable is left.
EMPTY_FILENAME = "attachment"
#: What an identifier folder component becomes when nothing usable is left.
EMPTY_COMPONENT = "unknown"

# U+FFFD (decoding damage), Windows-reserved characters, both separators, C0 controls and DEL.
_FORBIDDEN = re.compile(r'[\ufffd<>:"/\\|?*\x00-\x1f\x7f]')
_STRIP = ". "


def sanitize_filename(name: str) -> str:
    """Return a safe single file name for the untrusted ``name`` (SPEC §9.3).

    Steps: basename, URL-decode, basename again (defeats ``%2F``/``%5C`` separators), Unicode NFC,
    replace U+FFFD, ``< > : " / \\ | ? *`` and control characters with ``_``, strip leading and
    trailing dots and spaces, ``attachment`` when empty, then :func:`cap_filename` to 255 bytes.
    Both ``/`` and ``\\`` count as separators. The result never contains a separator and is
    never ``.`` or ``..``.
    """
    base = _basename(unquote(_basename(name)))
    cleaned = _clean(base)
    return cap_filename(cleaned) if cleaned else EMPTY_FILENAME


def sanitize_component(value: str) -> str:
    """Return ``value`` as a safe folder component (identifiers such as an assignment id).

    Same character rules as :func:`sanitize_filename` (separators and reserved characters become
    ``_``, leading/trailing dots and spaces stripped, capped at 255 bytes) without URL-decoding or
    taking a basename, so no information is silently dropped. Empty ⇒ ``unknown``.
    """
    cleaned = _clean(value)
    return cap_filename(cleaned) if cleaned else EMPTY_COMPONENT


def split_ext(name: str) -> tuple[str, str]:
    """Split at the last dot: ``"photo.jpg"`` ⇒ ``("photo", "jpg")``; no dot ⇒ ``(name, "")``.

    A name whose only dot is the first character (``".env"``) has no extension.
    """
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, ext


def cap_filename(name: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """Cut the stem of ``name`` so its UTF-8 encoding is at most ``max_bytes`` bytes.

    An extension of at most 10 characters is kept whole (a longer one counts as part of the stem).
    If even the extension does not fit, the whole name is cut. Multi-byte characters are never
    split. A name that already fits is returned unchanged.
    """
    if max_bytes < 1:
        raise ValueError("max_bytes must be at least 1")
    if len(name.encode("utf-8")) <= max_bytes:
        return name
    stem, ext = split_ext(name)
    if not ext or len(ext) > MAX_EXT_CHARS:
        return _truncate_utf8(name, max_bytes)
    suffix = "." + ext
    budget = max_bytes - len(suffix.encode("utf-8"))
    if budget < 1:
        return _truncate_utf8(name, max_bytes)
    cut = _truncate_utf8(stem, budget)
    # A cut that ends in dots or spaces would read as a doubled or hidden dot before the extension.
    return (cut.rstrip(_STRIP) or cut) + suffix


def add_stem_suffix(name: str, suffix: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """Insert ``suffix`` before the extension (``"A_photo.jpg"``, ``"_2"`` ⇒ ``"A_photo_2.jpg"``).

    The stem is cut first, as in :func:`cap_filename`, so the suffix always survives and the
    result fits in ``max_bytes``.
    """
    stem, ext = split_ext(name)
    if not ext or len(ext) > MAX_EXT_CHARS:
        stem, ext = name, ""
    tail = suffix + ("." + ext if ext else "")
    budget = max_bytes - len(tail.encode("utf-8"))
    if budget < 1:
        raise ValueError(f"suffix {suffix!r} does not fit in {max_bytes} bytes")
    return _truncate_utf8(stem, budget) + tail


def _basename(path: str) -> str:
    return re.split(r"[/\\]", path)[-1]


def _clean(text: str) -> str:
    normalised = unicodedata.normalize("NFC", text)
    return _FORBIDDEN.sub("_", normalised).strip(_STRIP)


def _truncate_utf8(text: str, max_bytes: int) -> str:
    """Longest prefix of ``text`` whose UTF-8 encoding fits in ``max_bytes`` (whole characters)."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    # Dropping an incomplete trailing sequence keeps only whole characters.
    return encoded[:max_bytes].decode("utf-8", errors="ignore")
