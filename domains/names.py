"""One source of domain, stage, queue and table names (STYLE §3).

Routes, worker queues, Beat entries and topics all derive from these enums.
"""

from __future__ import annotations

from enum import StrEnum


class Domain(StrEnum):
    XACT = "xact"
    CLAIMX = "claimx"


class Stage(StrEnum):
    ENRICH = "enrich"
    DOWNLOAD = "download"
    UPLOAD = "upload"
    WRITE = "write"


#: Which stages each domain runs (and therefore which queues exist).
DOMAIN_STAGES: dict[Domain, tuple[Stage, ...]] = {
    Domain.XACT: (Stage.DOWNLOAD, Stage.UPLOAD, Stage.WRITE),
    Domain.CLAIMX: (Stage.ENRICH, Stage.DOWNLOAD, Stage.UPLOAD, Stage.WRITE),
}

#: Queue for the Beat-scheduled batcher and maintenance tasks.
MAINTENANCE_QUEUE = "pipeline.maintenance"


def queue_name(domain: Domain | str, stage: Stage | str) -> str:
    return f"{Domain(domain).value}.{Stage(stage).value}"


def task_name(domain: Domain | str, stage: Stage | str, what: str = "") -> str:
    """Registered task names say domain and stage: ``xact.download``, ``claimx.write.rows``."""
    base = f"{Domain(domain).value}.{Stage(stage).value}"
    return f"{base}.{what}" if what else base


def all_queues() -> list[str]:
    return [queue_name(d, s) for d, stages in DOMAIN_STAGES.items() for s in stages] + [MAINTENANCE_QUEUE]


class Table(StrEnum):
    XACT_EVENTS = "xact_events"
    XACT_ATTACHMENTS = "xact_attachments"
    XACT_ATTACHMENTS_FAILED = "xact_attachments_failed"
    CLAIMX_EVENTS = "claimx_events"
    CLAIMX_PROJECTS = "claimx_projects"
    CLAIMX_CONTACTS = "claimx_contacts"
    CLAIMX_ATTACHMENT_METADATA = "claimx_attachment_metadata"
    CLAIMX_TASKS = "claimx_tasks"
    CLAIMX_TASK_TEMPLATES = "claimx_task_templates"
    CLAIMX_EXTERNAL_LINKS = "claimx_external_links"
    CLAIMX_VIDEO_COLLAB = "claimx_video_collab"
    CLAIMX_ATTACHMENTS = "claimx_attachments"


def raw_topic(domain: Domain | str) -> str:
    return f"{Domain(domain).value}.events.raw"


def dlq_topic(domain: Domain | str) -> str:
    return f"{Domain(domain).value}.events.dlq"
