"""Arrow schemas of the built-in tables, for readers that look them up here.

Each domain declares its own tables (``domains/<name>/tables.py``); this module only re-exports
the built-in ones under their old names.
"""

from __future__ import annotations

from domains.claimx.tables import (
    CLAIMX_ATTACHMENT_METADATA,
    CLAIMX_ATTACHMENTS,
    CLAIMX_CONTACTS,
    CLAIMX_EVENTS,
    CLAIMX_EXTERNAL_LINKS,
    CLAIMX_PROJECTS,
    CLAIMX_TASK_TEMPLATES,
    CLAIMX_TASKS,
    CLAIMX_VIDEO_COLLAB,
)
from domains.tables import BOOL, DATE, FLOAT, INT, STR, TS
from domains.xact.tables import XACT_ATTACHMENTS, XACT_ATTACHMENTS_FAILED, XACT_EVENTS

__all__ = [
    "BOOL",
    "CLAIMX_ATTACHMENTS",
    "CLAIMX_ATTACHMENT_METADATA",
    "CLAIMX_CONTACTS",
    "CLAIMX_EVENTS",
    "CLAIMX_EXTERNAL_LINKS",
    "CLAIMX_PROJECTS",
    "CLAIMX_TASKS",
    "CLAIMX_TASK_TEMPLATES",
    "CLAIMX_VIDEO_COLLAB",
    "DATE",
    "FLOAT",
    "INT",
    "STR",
    "TS",
    "XACT_ATTACHMENTS",
    "XACT_ATTACHMENTS_FAILED",
    "XACT_EVENTS",
]
