"""Deterministic attachment files served by the simulator (pure: no I/O, no clock).

A file is addressed by ``host_and_path`` — the production URL without its scheme, for example
``xn-exportreceiver.s3.example.com/exports/A-1/report.pdf`` or
``files.example.com/service/cxfileservice/get/<uuid>?filename=x.pdf``. Contract:

* **Bytes** depend only on the host, the percent-decoded path, the type and the size; the query
  never changes them (a refreshed presigned link serves the same file as the expired one).
* **Type** is the extension of the path's last segment, else of the ``filename`` / ``file`` /
  ``name`` query parameter (SPEC §9.2), lower-cased; the first bytes carry that type's magic header
  (``%PDF-1.4``, JPEG SOI, PNG signature, ``<?xml``, ``ftyp`` …) and ``Content-Type`` follows
  :data:`CONTENT_TYPES` (``esx`` is ``application/octet-stream`` on purpose: it must fail validation).
* **Size**: ``/synthetic/…/{size_bytes}/{name}`` carries it in the segment before the name;
  ``/files/…`` (the legacy dummy source) is 100 KiB; anything else is ``default_size`` (2 KiB).
* Content is produced in 64 KiB blocks from SHAKE-256, so any byte range is computed without
  building the whole body: a 1 GB file costs one block of memory.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_SIZE_BYTES = 2048  # sample attachments
DUMMY_SOURCE_SIZE_BYTES = 100 * 1024  # SPEC §2.4 dummy source default
BLOCK_BYTES = 64 * 1024  # generation and streaming unit

#: Hosts whose every path is a file. Other hosts only serve ``/files/…`` and ``/synthetic/…``.
FILE_HOSTS = frozenset(
    {
        "xn-exportreceiver.s3.example.com",
        "claimx-media.s3.example.com",
        "files.example.com",
    }
)

CONTENT_TYPES: dict[str, str] = {
    "pdf": "application/pdf",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "webp": "image/webp",
    "xml": "application/xml",
    "txt": "text/plain",
    "csv": "text/csv",
    "json": "application/json",
    "html": "text/html",
    "htm": "text/html",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "zip": "application/zip",
    "esx": "application/octet-stream",
    "doc": "application/msword",
    "xls": "application/vnd.ms-excel",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
_OCTET = "application/octet-stream"

_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP = b"PK\x03\x04"
_HEADERS: dict[str, bytes] = {
    "pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
    "jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "gif": b"GIF89a",
    "bmp": b"BM",
    "tif": b"II*\x00",
    "xml": b'<?xml version="1.0" encoding="UTF-8"?>\n<document><!-- ',
    "json": b'{"data": "',
    "html": b"<!DOCTYPE html>\n<html><body><!-- ",
    "mp4": b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
    "mov": b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ",
    "zip": _ZIP,
    "esx": _ZIP,
    "docx": _ZIP,
    "xlsx": _ZIP,
    "doc": _OLE,
    "xls": _OLE,
}
_TRAILERS: dict[str, bytes] = {
    "pdf": b"\n%%EOF\n",
    "jpg": b"\xff\xd9",
    "png": b"\x00\x00\x00\x00IEND\xaeB`\x82",
    "xml": b" -->\n</document>\n",
    "json": b'"}\n',
    "html": b" --></body></html>\n",
}
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_ALIASES = {"jpeg": "jpg", "tiff": "tif", "htm": "html"}
_TEXT_TYPES = frozenset({"xml", "txt", "csv", "json", "html"})
# 64 safe characters (no '-', quotes, '<', '&'): text bodies stay valid inside their wrapper.
_TEXT_TABLE = bytes.maketrans(
    bytes(range(256)), (b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n" * 4)
)


@dataclass(frozen=True)
class FileSpec:
    """What the simulator serves for one file URL."""

    host: str
    path: str  # percent-decoded, without the leading '/'
    extension: str  # lower-case, '' when none
    size: int
    content_type: str

    @property
    def seed(self) -> bytes:
        return hashlib.sha256(f"{self.host}/{self.path}|{self.extension}|{self.size}".encode()).digest()


def split_target(host_and_path: str) -> tuple[str, str, str]:
    """``[scheme://]host/path[?query]`` → ``(host lower-case, raw path without '/', raw query)``."""
    text = host_and_path.strip()
    if "://" not in text:
        text = "https://" + text.lstrip("/")
    parts = urlsplit(text)
    return (parts.hostname or "").lower(), parts.path.lstrip("/"), parts.query


def file_extension(path: str, query: str) -> str:
    """Extension per SPEC §9.2: last segment of the path, else ``filename``/``file``/``name``."""
    last = unquote(path).rstrip("/").rsplit("/", 1)[-1]
    if "." in last:
        return last.rsplit(".", 1)[1].lower()
    params = parse_qs(query)
    for key in ("filename", "file", "name"):
        for value in params.get(key, []):
            if "." in value:
                return value.rsplit(".", 1)[1].lower()
    return ""


def file_spec(host_and_path: str, *, default_size: int = DEFAULT_SIZE_BYTES) -> FileSpec | None:
    """The file served at ``host_and_path``; ``None`` when nothing is served there (404)."""
    host, raw_path, query = split_target(host_and_path)
    path = unquote(raw_path)
    segments = [s for s in path.split("/") if s]
    if not host or not segments:
        return None
    if segments[0] == "synthetic":
        if len(segments) < 3 or not segments[-2].isdigit():
            return None
        size = int(segments[-2])
    elif segments[0] == "files":
        size = DUMMY_SOURCE_SIZE_BYTES
    elif host in FILE_HOSTS:
        size = default_size
    else:
        return None
    ext = file_extension(raw_path, query)
    return FileSpec(
        host=host, path=path, extension=ext, size=size, content_type=CONTENT_TYPES.get(ext, _OCTET)
    )


def _header(ext: str, size: int) -> bytes:
    kind = _ALIASES.get(ext, ext)
    if kind == "webp":
        return b"RIFF" + max(size - 8, 0).to_bytes(4, "little") + b"WEBP"
    return _HEADERS.get(kind, b"")


def _block(spec: FileSpec, index: int) -> bytes:
    """Block ``index`` of the file, header and trailer applied."""
    start = index * BLOCK_BYTES
    length = min(BLOCK_BYTES, spec.size - start)
    data = bytearray(hashlib.shake_256(spec.seed + index.to_bytes(8, "big")).digest(length))
    kind = _ALIASES.get(spec.extension, spec.extension)
    if kind in _TEXT_TYPES:
        data = bytearray(data.translate(_TEXT_TABLE))
    header = _header(spec.extension, spec.size)[: spec.size]
    trailer = _TRAILERS.get(kind, b"")
    if len(header) + len(trailer) > spec.size:
        trailer = b""
    _overlay(data, start, header, 0)
    _overlay(data, start, trailer, spec.size - len(trailer))
    return bytes(data)


def _overlay(data: bytearray, block_start: int, patch: bytes, patch_start: int) -> None:
    lo = max(block_start, patch_start)
    hi = min(block_start + len(data), patch_start + len(patch))
    if lo < hi:
        data[lo - block_start : hi - block_start] = patch[lo - patch_start : hi - patch_start]


def iter_content(spec: FileSpec, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Bytes ``[start, end)`` of the file in chunks of at most :data:`BLOCK_BYTES`."""
    end = spec.size if end is None else min(end, spec.size)
    position = max(start, 0)
    while position < end:
        index = position // BLOCK_BYTES
        block = _block(spec, index)
        offset = position - index * BLOCK_BYTES
        piece = block[offset : min(len(block), end - index * BLOCK_BYTES)]
        yield piece
        position += len(piece)


def expected_bytes(host_and_path: str, *, default_size: int = DEFAULT_SIZE_BYTES) -> bytes:
    """The exact body the simulator serves for ``host_and_path`` (a URL without scheme, or with).

    Raises ``KeyError`` when the simulator serves nothing there. Meant for tests comparing lake files
    byte for byte; it builds the whole body, so keep it to test-sized files.
    """
    spec = file_spec(host_and_path, default_size=default_size)
    if spec is None:
        raise KeyError(f"the simulator serves no file at {host_and_path!r}")
    return b"".join(iter_content(spec))


def presigned_expiry(query: str) -> datetime | None:
    """When a presigned query expires: S3 ``X-Amz-Date``+``X-Amz-Expires`` (any case) or the ClaimX
    file service ``systemDate``+``expires`` (epoch ms). ``None`` when not presigned or unparsable."""
    params = {k.lower(): v[0] for k, v in parse_qs(query).items() if v}
    try:
        if "x-amz-date" in params and "x-amz-expires" in params:
            signed = datetime.strptime(params["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            return signed + timedelta(seconds=int(params["x-amz-expires"]))
        if "systemdate" in params and "expires" in params:
            millis = int(params["systemdate"]) + int(params["expires"])
            return datetime.fromtimestamp(millis / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def access_denied_xml(resource: str, expired_at: datetime, now: datetime) -> bytes:
    """S3-style ``AccessDenied`` body for an expired presigned request (``resource`` has no query)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
        "<Message>Request has expired</Message>"
        f"<Expires>{expired_at.strftime('%Y-%m-%dT%H:%M:%SZ')}</Expires>"
        f"<ServerTime>{now.strftime('%Y-%m-%dT%H:%M:%SZ')}</ServerTime>"
        f"<Resource>{_xml_escape(resource)}</Resource><RequestId>SIMULATOR</RequestId></Error>"
    ).encode()


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """A single ``Range: bytes=a-b`` header → ``(start, end_exclusive)``; ``"invalid"`` when
    unsatisfiable (416); ``None`` when absent or not understood (serve the whole file)."""
    match = _RANGE_RE.match(header.strip()) if header else None
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        start, end = max(size - int(last), 0), size
    else:
        start = int(first)
        end = min(int(last) + 1, size) if last else size
    return (start, end) if start < end else "invalid"
