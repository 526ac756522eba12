"""Synthetic event streams in Eventhouse row form (pure and deterministic for a given seed).

* :func:`xact_events` — rows shaped like ``samples/xact_events.jsonl``; every event carries
  ``attachments_per_event`` attachments on ``https://files.example.com/synthetic/{seed}-{i}/{size}/{name}``
  (types pdf, jpg, png, xml: all pass the download validation), so the simulator serves each file
  with exactly ``file_size`` bytes.
* :func:`claimx_events` — rows shaped like ``samples/claimx_events.jsonl``, referencing only
  synthetic ids the simulated API answers (:mod:`simulator.synthetic`).

Timestamps increase by 10 ms per row from ``2026-02-01 + seed days``, so streams of different seeds
(up to 8.6 M rows each) never share an ingestion time and therefore never an event id.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from simulator import synthetic

XACT_FILE_HOST = "files.example.com"
_EPOCH = datetime(2026, 2, 1, tzinfo=UTC)
_STEP = timedelta(milliseconds=10)
_XACT_SUBTYPES = (
    ("documentsReceived", 75),
    ("firstNoticeOfLossReceived", 10),
    ("estimatePackageReceived", 15),
)
_ATTACHMENT_KINDS = (("report", "pdf"), ("photo", "jpg"), ("sketch", "png"), ("roof", "xml"))
# claimx kinds after a project's PROJECT_CREATED (weights ~ 50 / 20 / 10 / 10 of the stream).
_CLAIMX_KINDS = (("file", 50), ("task", 20), ("video", 10), ("project", 10))
_PROJECT_EVENTS = (
    "POLICYHOLDER_INVITED",
    "POLICYHOLDER_JOINED",
    "PROJECT_AUTO_XA_LINKING_UNSUCCESSFUL",
    "PROJECT_MFN_ADDED",
)


def _timestamp(seed: int, index: int) -> str:
    moment = _EPOCH + timedelta(days=seed) + index * _STEP
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    names = [name for name, _ in weighted]
    return rng.choices(names, weights=[w for _, w in weighted])[0]


def xact_attachment_url(event_key: str, slot: int, file_size: int) -> str:
    """Attachment ``slot`` of the event keyed ``event_key``; served with ``file_size`` bytes."""
    stem, ext = _ATTACHMENT_KINDS[slot % len(_ATTACHMENT_KINDS)]
    return f"https://{XACT_FILE_HOST}/synthetic/{event_key}/{file_size}/{stem}_{slot + 1}.{ext}"


def xact_events(
    n: int, *, attachments_per_event: int = 2, file_size: int = 2048, seed: int = 1
) -> list[dict[str, Any]]:
    """``n`` xact rows with unique trace ids, valid subtypes and ``A-…`` assignment ids."""
    if n < 0 or attachments_per_event < 0 or file_size < 0:
        raise ValueError("n, attachments_per_event and file_size must be >= 0")
    rng = random.Random(f"xact:{seed}")
    rows = []
    for i in range(n):
        subtype = _pick(rng, _XACT_SUBTYPES)
        assignment = f"A-{7_200_001 + i % 1_000_000}"
        data: dict[str, Any] = {
            "assignmentId": assignment,
            "originalAssignmentId": assignment,
            "xnAddress": f"XN-{i % 10000:04d}@xn.example.com",
            "carrierId": "CARRIER-0042",
            "adm": {"coverageLoss": {"claimNumber": f"CLM-SYN-{seed}-{i:07d}"}},
            "description": f"Synthetic {subtype}",
            "dateTime": _timestamp(seed, i)[:19],
            "contact": {
                "type": "Insured",
                "name": f"Syn Holder {i}",
                "contactMethods": {
                    "phone": {"type": "Mobile", "number": f"555-{i % 10000:04d}"},
                    "email": {"address": f"holder{i}@example.com"},
                },
            },
            "attachments": [
                xact_attachment_url(f"{seed}-{i}", j, file_size) for j in range(attachments_per_event)
            ],
        }
        if subtype == "estimatePackageReceived":
            data["estimateVersion"] = str(1 + i % 3)
        rows.append(
            {
                "type": f"verisk.claims.property.xn.{subtype}",
                "version": 1,
                "utcDateTime": _timestamp(seed, i),
                "traceId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "data": data,
            }
        )
    return rows


def _claimx_row(
    event_type: str,
    project: int,
    when: str,
    *,
    media: int | None = None,
    task: int | None = None,
    video: int | None = None,
    mfn: str | None = None,
) -> dict[str, Any]:
    return {
        "eventType": event_type,
        "projectId": str(project),
        "mediaId": None if media is None else str(media),
        "taskAssignmentId": None if task is None else str(task),
        "videoCollaborationId": None if video is None else str(video),
        "masterFileName": mfn,
        "IngestionTime": when,
    }


def claimx_events(
    n: int, *, projects: int = 50, media_per_project: int = 5, seed: int = 1
) -> list[dict[str, Any]]:
    """A mixed stream of ``n`` claimx rows over ``projects`` synthetic projects.

    Each project's first row is its ``PROJECT_CREATED``; after that ~50 % ``PROJECT_FILE_ADDED``
    (each project's ``media_per_project`` media in turn, then repeating), ~20 % custom task
    (assigned, then completed), ~10 % video collaboration, ~10 % policyholder / XA-linking / MFN.
    """
    if not 1 <= projects <= synthetic.MAX_PROJECTS:
        raise ValueError(f"projects must be within 1..{synthetic.MAX_PROJECTS}")
    if not 1 <= media_per_project <= synthetic.MEDIA_SLOTS:
        raise ValueError(f"media_per_project must be within 1..{synthetic.MEDIA_SLOTS}")
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(f"claimx:{seed}")
    created: set[int] = set()
    next_media: dict[int, int] = {}
    next_task: dict[int, int] = {}
    rows = []
    for i in range(n):
        index = rng.randrange(projects)
        pid = synthetic.project_id(index)
        when = _timestamp(seed, i)
        if index not in created:
            created.add(index)
            rows.append(_claimx_row("PROJECT_CREATED", pid, when))
            continue
        kind = _pick(rng, _CLAIMX_KINDS)
        if kind == "file":
            slot = next_media.get(index, 0)
            next_media[index] = slot + 1
            media = synthetic.media_id(index, slot % media_per_project)
            rows.append(_claimx_row("PROJECT_FILE_ADDED", pid, when, media=media))
        elif kind == "task":
            step = next_task.get(index, 0)
            next_task[index] = step + 1
            task = synthetic.assignment_id(index, (step // 2) % synthetic.TASK_SLOTS)
            event = "CUSTOM_TASK_ASSIGNED" if step % 2 == 0 else "CUSTOM_TASK_COMPLETED"
            rows.append(_claimx_row(event, pid, when, task=task))
        elif kind == "video":
            event = rng.choice(("VIDEO_COLLABORATION_INVITE_SENT", "VIDEO_COLLABORATION_COMPLETED"))
            rows.append(_claimx_row(event, pid, when, video=synthetic.video_collaboration_id(index)))
        else:
            event = rng.choice(_PROJECT_EVENTS)
            mfn = f"MFN-SYN-{pid}" if event == "PROJECT_MFN_ADDED" else None
            rows.append(_claimx_row(event, pid, when, mfn=mfn))
    return rows
