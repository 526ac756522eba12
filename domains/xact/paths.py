"""Where an xact attachment goes in the lake (SPEC §3.2 as amended by DECISIONS "xact").

Blob path: ``{status_subtype}/{assignment_id}/{trace_id}/{file_name}``, relative to the xact
domain root. The file name's stem and type come from the same rule the downloader uses for its
extension check (:mod:`core.security.filetypes`): the URL's last path segment when it has an
extension, else a ``filename``/``file``/``name`` query parameter. The name is sanitised
(SPEC §9.3, so ``water%20damage.png`` becomes ``water damage.png``), the extension lower-cased and
re-appended, and a prefix added by subtype:

* ``documentsReceived`` and any other subtype: ``{assignment_id}_{stem}.{ext}``
* ``firstNoticeOfLossReceived``: ``{assignment_id}_FNOL_{stem}.{ext}``
* ``estimatePackageReceived``: ``{assignment_id}_{estimate_version or "unknown"}_{stem}.{ext}``

Without an extension, ``file_type`` is ``UNKNOWN`` and nothing is appended.

No component can escape its folder: the subtype, assignment id and trace id are sanitised with
:func:`~core.security.filenames.sanitize_component` and the whole file name is checked the
same way. A file name is at most 255 bytes of UTF-8 (stem cut, extension kept).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.security.filenames import (
    MAX_NAME_BYTES,
    add_stem_suffix,
    cap_filename,
    sanitize_component,
    sanitize_filename,
)
from core.security.filetypes import extension_from_url, name_from_url
from domains.ids import xact_media_id
from domains.xact.models import StatusSubtype, XactEvent

#: ``file_type`` when the URL yields no extension.
UNKNOWN_FILE_TYPE = "UNKNOWN"
#: Stem used when the URL yields no name at all (SPEC §3.2 CURRENT).
_EMPTY_STEM = "unknown"


@dataclass(frozen=True)
class AttachmentPlan:
    """Everything the dispatcher needs to enqueue one attachment's download."""

    attachment_url: str
    media_id: str
    blob_path: str
    file_name: str
    file_type: str
    """Upper-case extension (``PDF``), ``UNKNOWN`` when the URL has none."""


def plan_attachments(event: XactEvent) -> list[AttachmentPlan]:
    """Plan every attachment of ``event``, in attachment order.

    The same URL twice is one attachment (``event.attachments`` already drops repeats). Different
    URLs whose file names would be equal (compared case-insensitively, so no store can confuse
    them) keep the first name; later ones get ``_2``, ``_3``… on the stem. Every attachment is
    planned, whether or not its URL later passes validation, so a name never depends on
    validation settings. Raises ``ValueError`` when the event has no ``assignmentId``; callers
    check first (SPEC §3.1 step 5).
    """
    assignment_id = event.assignment_id
    if assignment_id is None:
        raise ValueError(f"xact event {event.trace_id} has no assignmentId; nothing to plan")
    folder = "/".join(
        sanitize_component(part) for part in (event.status_subtype, assignment_id, event.trace_id)
    )
    prefix = _prefix(event.status_subtype, assignment_id, event.estimate_version)
    taken: set[str] = set()
    plans: list[AttachmentPlan] = []
    for url in event.attachments:
        ext = (extension_from_url(url) or "").lower()
        file_name = _unique(_file_name(prefix, url, ext), taken)
        plans.append(
            AttachmentPlan(
                attachment_url=url,
                media_id=xact_media_id(event.trace_id, url),
                blob_path=f"{folder}/{file_name}",
                file_name=file_name,
                file_type=ext.upper() if ext else UNKNOWN_FILE_TYPE,
            )
        )
    return plans


def _prefix(status_subtype: str, assignment_id: str, estimate_version: str | None) -> str:
    if status_subtype == StatusSubtype.FIRST_NOTICE_OF_LOSS_RECEIVED:
        return f"{assignment_id}_FNOL_"
    if status_subtype == StatusSubtype.ESTIMATE_PACKAGE_RECEIVED:
        return f"{assignment_id}_{estimate_version or 'unknown'}_"
    return f"{assignment_id}_"


def _file_name(prefix: str, url: str, ext: str) -> str:
    raw = name_from_url(url)
    name = sanitize_filename(raw) if raw else _EMPTY_STEM
    stem = name
    # The sanitised name ends in the sanitised extension when the URL's name carried it.
    clean_ext = sanitize_component(ext).lower() if ext else ""
    tail = len(clean_ext) + 1
    if clean_ext and len(name) > tail and name[-tail:].lower() == "." + clean_ext:
        stem = name[:-tail]
    full = f"{prefix}{stem}.{ext}" if ext else f"{prefix}{stem}"
    # The prefix (assignment id, estimate version) and the extension are untrusted too.
    return cap_filename(sanitize_component(full), MAX_NAME_BYTES)


def _unique(name: str, taken: set[str]) -> str:
    candidate, counter = name, 1
    while candidate.casefold() in taken:
        counter += 1
        candidate = add_stem_suffix(name, f"_{counter}")
    taken.add(candidate.casefold())
    return candidate
