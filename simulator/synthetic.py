"""Synthetic ClaimX data derived from ids alone (pure; shared by the API and the event generators).

Id scheme (ranges never overlap, all fit in int32):

* project ``6000001 + p`` for project index ``0 <= p < MAX_PROJECTS``;
* media ``9000001 + p*MEDIA_SLOTS + k`` for slot ``0 <= k < MEDIA_SLOTS`` of project ``p``;
* task assignment ``8000001 + p*TASK_SLOTS + j`` for slot ``0 <= j < TASK_SLOTS``;
* video collaboration ``7000001 + p``.

So any id tells its project, and the API answers for it without state. A project's full media list
(``/media`` without ``mediaIds``) holds its first ``media_per_project`` slots (the simulator's
setting, default :data:`MEDIA_SLOTS`); a ``mediaIds`` filter answers any slot of the project.
Media links point at ``claimx-media.s3.example.com/synthetic/{project}/{media}/{size}/{name}`` with a
presigned query signed ``20991231T000000Z`` (never expired).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

PROJECT_ID_START = 6_000_001
MEDIA_ID_START = 9_000_001
ASSIGNMENT_ID_START = 8_000_001
VIDEO_ID_START = 7_000_001
MAX_PROJECTS = 99_999
MEDIA_SLOTS = 20
TASK_SLOTS = 10
MEDIA_HOST = "claimx-media.s3.example.com"
_TEMPLATES = (46001, 46002, 46003)
_MEDIA_KINDS = (
    ("jpg", "photo"),
    ("pdf", "document"),
    ("png", "sketch"),
    ("jpg", "closeup"),
    ("mp4", "walkthrough"),
)
_EPOCH = datetime(2026, 2, 1, tzinfo=UTC)
_PRESIGNED_QUERY = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLEKEY%2F20991231%2Fus-east-1%2Fs3"
    "%2Faws4_request&X-Amz-Date=20991231T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=" + "5e" * 32
)


def project_id(index: int) -> int:
    if not 0 <= index < MAX_PROJECTS:
        raise ValueError(f"synthetic project index out of range: {index}")
    return PROJECT_ID_START + index


def project_index(pid: int) -> int | None:
    """Index of a synthetic project id, ``None`` when the id is not synthetic."""
    index = pid - PROJECT_ID_START
    return index if 0 <= index < MAX_PROJECTS else None


def media_id(index: int, slot: int) -> int:
    if not 0 <= slot < MEDIA_SLOTS:
        raise ValueError(f"media slot out of range: {slot}")
    project_id(index)  # validates the index
    return MEDIA_ID_START + index * MEDIA_SLOTS + slot


def media_owner(mid: int) -> tuple[int, int] | None:
    """``(project index, slot)`` of a synthetic media id."""
    offset = mid - MEDIA_ID_START
    if not 0 <= offset < MAX_PROJECTS * MEDIA_SLOTS:
        return None
    return divmod(offset, MEDIA_SLOTS)


def assignment_id(index: int, slot: int) -> int:
    if not 0 <= slot < TASK_SLOTS:
        raise ValueError(f"task slot out of range: {slot}")
    project_id(index)  # validates the index
    return ASSIGNMENT_ID_START + index * TASK_SLOTS + slot


def assignment_owner(aid: int) -> tuple[int, int] | None:
    offset = aid - ASSIGNMENT_ID_START
    if not 0 <= offset < MAX_PROJECTS * TASK_SLOTS:
        return None
    return divmod(offset, TASK_SLOTS)


def video_collaboration_id(index: int) -> int:
    project_id(index)  # validates the index
    return VIDEO_ID_START + index


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def project_body(pid: int) -> dict[str, Any]:
    """``GET /export/project/{pid}`` body (shape of the samples)."""
    index = project_index(pid)
    if index is None:
        raise KeyError(pid)
    created = _EPOCH + timedelta(minutes=index)
    return {
        "data": {
            "companyName": "Synthetic Mutual (Test)",
            "project": {
                "projectId": pid,
                "projectNumber": f"PRJ-{pid}",
                "mfn": f"MFN-SYN-{pid}",
                "secondaryNumber": f"CLM-SYN-{pid}",
                "status": "Active",
                "createdDate": _iso(created),
                "dateOfLoss": _iso(created - timedelta(days=3)),
                "typeOfLoss": ("Water", "Wind", "Fire")[index % 3],
                "causeOfLoss": "Synthetic",
                "lossDescription": f"Synthetic loss for project {pid}.",
                "yearBuilt": 1950 + index % 70,
                "squareFootage": 1000 + index % 3000,
                "dateReceived": _iso(created),
                "customAttribute1": f"Region-{index % 5}",
                "customerInformation": {
                    "firstName": "Syn",
                    "lastName": f"Holder{index}",
                    "businessLineType": "Personal",
                    "emails": [{"emailAddress": f"holder{index}@example.com", "primary": True}],
                    "phones": [
                        {
                            "phoneNumber": f"555{index % 10000:04d}",
                            "phoneCountryCode": 1,
                            "phoneType": "Mobile",
                        }
                    ],
                },
                "address": {
                    "street1": f"{index + 1} Synthetic Way",
                    "city": "Simtown",
                    "stateProvince": "TX",
                    "zipPostcode": "73301",
                    "country": "US",
                },
            },
            "teamMembers": [
                {
                    "userName": f"adjuster{index % 17}@example.com",
                    "primaryContact": True,
                    "mfn": f"MFN-SYN-{pid}",
                }
            ],
        }
    }


def media_item(pid: int, mid: int, *, size_bytes: int) -> dict[str, Any]:
    """One media list item; its link serves a ``size_bytes`` file from the simulator."""
    owner = media_owner(mid)
    if owner is None or project_id(owner[0]) != pid:
        raise KeyError(mid)
    _index, slot = owner
    ext, stem = _MEDIA_KINDS[slot % len(_MEDIA_KINDS)]
    name = f"{stem}_{mid}.{ext}"
    link = f"https://{MEDIA_HOST}/synthetic/{pid}/{mid}/{size_bytes}/{name}?{_PRESIGNED_QUERY}"
    return {
        "mediaID": mid,
        "taskAssignmentID": None,
        "mediaType": ext,
        "mediaName": name,
        "mediaDescription": f"Synthetic {stem}",
        "mediaComment": None,
        "latitude": 30.0 + slot / 1000,
        "longitude": -97.0 - slot / 1000,
        "gpsSource": "device",
        "takenDate": _iso(_EPOCH + timedelta(seconds=slot)),
        "fullDownloadLink": link,
    }


def media_body(
    pid: int, media_ids: list[int] | None, *, size_bytes: int, media_per_project: int = MEDIA_SLOTS
) -> dict[str, Any]:
    """``/export/project/{pid}/media``: the listed ids of this project (others silently omitted) or,
    with ``media_ids=None``, the first ``media_per_project`` slots."""
    index = project_index(pid)
    if index is None:
        raise KeyError(pid)
    if media_ids is None:
        ids = [media_id(index, k) for k in range(min(media_per_project, MEDIA_SLOTS))]
    else:
        ids = [m for m in media_ids if (owner := media_owner(m)) is not None and owner[0] == index]
    return {"data": [media_item(pid, m, size_bytes=size_bytes) for m in ids]}


def task_body(aid: int) -> dict[str, Any]:
    """``GET /customTasks/assignment/{aid}?full=true`` body."""
    owner = assignment_owner(aid)
    if owner is None:
        raise KeyError(aid)
    index, slot = owner
    pid = project_id(index)
    template = _TEMPLATES[slot % len(_TEMPLATES)]
    assigned = _EPOCH + timedelta(minutes=index, seconds=slot)
    completed = slot % 2 == 1
    return {
        "assignmentId": aid,
        "taskId": template,
        "taskName": f"Synthetic Task {template}",
        "formId": f"FORM-{template}",
        "projectId": pid,
        "assigneeId": 31001,
        "assignorId": 31002,
        "assignor": "adjuster.one@example.com",
        "dateAssigned": _iso(assigned),
        "dateCompleted": _iso(assigned + timedelta(hours=2)) if completed else None,
        "status": "COMPLETED" if completed else "ASSIGNED",
        "stpEnabled": True,
        "mfn": f"MFN-SYN-{pid}",
        "url": f"https://portal.example.com/tasks/{aid}",
        "customTask": {
            "taskId": template,
            "compId": 9001,
            "name": f"Synthetic Task {template}",
            "description": "Synthetic template",
            "formId": f"FORM-{template}",
            "formName": f"Synthetic Form {template}",
            "enabled": True,
            "default": False,
            "isManualDelivery": False,
            "isExternalLinkDelivery": True,
            "providePortalAccess": True,
            "notifyAssignedSendRecipient": True,
            "notifyAssignedSendRecipientSms": False,
            "notifyAssignedSubject": "New task",
            "notifyTaskCompleted": True,
            "notifyCompletedSubject": "Task completed",
            "allowReSubmit": True,
            "autoGeneratePdf": True,
            "modifiedBy": "Template Admin",
            "modifiedById": 31003,
            "modifiedDate": "2025-11-20T10:00:00Z",
        },
        "externalLinkData": {
            "linkId": 20_000_000 + aid,
            "linkCode": f"LNK-{aid}",
            "url": f"https://portal.example.com/l/LNK-{aid}",
            "notificationAccessMethod": "EMAIL",
            "countryId": 1,
            "stateId": 44,
            "email": f"holder{index}@example.com",
            "firstName": "Syn",
            "lastName": f"Holder{index}",
            "phone": f"555{index % 10000:04d}",
            "phoneCountryCode": 1,
        },
    }


def video_body(pid: int) -> dict[str, Any]:
    """``POST /data`` ``VIDEO_COLLABORATION`` body: one collaboration for this project."""
    index = project_index(pid)
    if index is None:
        raise KeyError(pid)
    created = _EPOCH + timedelta(minutes=index)
    return {
        "success": True,
        "data": [
            {
                "videoCollaborationId": video_collaboration_id(index),
                "claimId": pid,
                "mfn": f"MFN-SYN-{pid}",
                "claimNumber": f"CLM-SYN-{pid}",
                "policyNumber": f"POL-SYN-{pid}",
                "emailUserName": f"adjuster{index % 17}@example.com",
                "claimRepFirstName": "Avery",
                "claimRepLastName": "Adjuster",
                "claimRepFullName": "Avery Adjuster",
                "numberOfVideos": 1 + index % 3,
                "numberOfPhotos": index % 20,
                "numberOfViewers": 2,
                "sessionCount": 1 + index % 4,
                "totalTimeSeconds": f"{600 + index % 900}.250",
                "totalTime": "00:10:00",
                "createdDate": _iso(created),
                "liveCallFirstSession": _iso(created + timedelta(hours=1)),
                "liveCallLastSession": _iso(created + timedelta(hours=2)),
                "companyId": 9001,
                "companyName": "Synthetic Mutual (Test)",
                "guid": f"00000000-0000-4000-8000-{pid:012d}",
            }
        ],
    }
