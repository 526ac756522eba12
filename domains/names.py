"""One source of domain, stage, queue and table names (STYLE §3).

``Domain`` and ``Table`` are *open* enums: their members are the built-in domains' names, and a
plug-in domain adds its own at registration (:func:`plug`), after which ``Domain("name")`` and
``Table("name")`` work everywhere the built-in ones do (pydantic fields, dict keys, ``is``).
An unknown, unregistered name is still a ``ValueError``. Routes, worker queues, Beat entries and
topics all derive from the registered domains (``domains.registry``).
"""

from __future__ import annotations

from enum import StrEnum

#: Names added by plug-in domains, per open enum class name.
_PLUGGED: dict[str, set[str]] = {}


class OpenNames(StrEnum):
    """A ``StrEnum`` that also accepts the names :func:`plug` registered for it."""

    @classmethod
    def _missing_(cls, value: object) -> OpenNames | None:
        if isinstance(value, str) and value in _PLUGGED.get(cls.__name__, ()):
            member = str.__new__(cls, value)
            member._name_ = value.upper()
            member._value_ = value
            return cls._value2member_map_.setdefault(value, member)  # type: ignore[return-value]  # the map holds members of cls
        return None


class Domain(OpenNames):
    XACT = "xact"
    CLAIMX = "claimx"


class Table(OpenNames):
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


def plug(kind: type[OpenNames], name: str) -> None:
    """Let ``kind(name)`` resolve (a plug-in domain's name or table). Names are lower-case
    identifiers, so they are safe in queue names, topics, Redis keys and table paths."""
    if not name.isidentifier() or name != name.lower():
        raise ValueError(f"{kind.__name__} name {name!r} must be a lower-case identifier")
    _PLUGGED.setdefault(kind.__name__, set()).add(name)


class Stage(StrEnum):
    ENRICH = "enrich"
    DOWNLOAD = "download"
    UPLOAD = "upload"
    WRITE = "write"


#: Queue for the Beat-scheduled batcher and maintenance tasks.
MAINTENANCE_QUEUE = "pipeline.maintenance"


def queue_name(domain: Domain | str, stage: Stage | str) -> str:
    return f"{Domain(domain).value}.{Stage(stage).value}"


def task_name(domain: Domain | str, stage: Stage | str, what: str = "") -> str:
    """Registered task names say domain and stage: ``xact.download``, ``claimx.write.rows``."""
    base = f"{Domain(domain).value}.{Stage(stage).value}"
    return f"{base}.{what}" if what else base


def raw_topic(domain: Domain | str) -> str:
    return f"{Domain(domain).value}.events.raw"


def dlq_topic(domain: Domain | str) -> str:
    return f"{Domain(domain).value}.events.dlq"


def host_upload_queue(domain: Domain | str, hostname: str) -> str:
    """The upload queue of one host, for a cache that is not shared (``SHARED_CACHE=false``)."""
    return f"{Domain(domain).value}.{Stage.UPLOAD.value}.host.{hostname}"
