"""A tiny third domain defined only here: it proves a domain plugs in without touching the pipeline.

Registered by ``DOMAIN_PLUGINS=tests.plugin_domain`` in the environment of the dispatcher, the
workers and Beat (``domains.registry``); nothing outside this folder names it.

* Event (JSON, one type): ``{"itemId": "A-1", "fileUrl": "https://files.example.com/…/manual.pdf"}``.
* Stages: ``plugin.enrich`` (pure: turns the event's URL into an attachment job) ->
  ``plugin.download -> plugin.upload -> plugin.write.inventory``; ``plugin.write.rows`` for the
  event row.
* One table, ``plugin_items``, keyed by ``item_id`` (upsert): the dispatcher writes the event row,
  the end of the attachment chain completes it with where the file went and how big it is.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from core.errors import PermanentError
from core.security.filenames import sanitize_component, sanitize_filename
from core.security.redact import sanitize_url
from core.settings import Settings
from domains.attachments import AttachmentJob
from domains.canvas import DomainSpec, EnrichOutcome, EventPlan, ParsedEvent, PlanBatch
from domains.names import Domain, Table
from domains.tables import INT, TS, MergeMode, schema, strings, table

NAME = "plugin"
TABLE = "plugin_items"
_NS = uuid.UUID("0b7e3c1e-3f0a-4c55-9a57-3c0f9f0f4a11")

ITEMS = schema(
    *strings("item_id", "event_id", "file_url", "blob_path", "sha256"),
    ("bytes_downloaded", INT),
    ("downloaded_at", TS),
    ("created_at", TS),
    ("updated_at", TS),
)


def parse(raw: bytes, _timestamp: datetime | None) -> ParsedEvent:
    try:
        row = json.loads(raw)
    except ValueError as exc:
        raise PermanentError(f"not JSON: {exc}") from None
    if not isinstance(row, dict) or not isinstance(row.get("itemId"), str) or not row["itemId"]:
        raise PermanentError("itemId missing")
    if not isinstance(row.get("fileUrl"), str):
        raise PermanentError("fileUrl missing")
    event_id = str(uuid.uuid5(_NS, row["itemId"]))
    return ParsedEvent(Domain(NAME), event_id, row, row)


def planner(_settings: Settings) -> PlanBatch:
    def plan_batch(events: Sequence[ParsedEvent], now: datetime) -> list[EventPlan]:
        return [
            EventPlan(
                Domain(NAME),
                p.event_id,
                rows={
                    Table(TABLE): [
                        {
                            "item_id": p.raw["itemId"],
                            "event_id": p.event_id,
                            "file_url": sanitize_url(p.raw["fileUrl"]),
                            "created_at": now.isoformat(),
                        }
                    ]
                },
                enrich=[{"event_id": p.event_id, **p.raw}],
            )
            for p in events
        ]

    return plan_batch


def enrich(_resources: Any, events: list[dict[str, Any]], _now: datetime) -> EnrichOutcome:
    plans = []
    for event in events:
        name = sanitize_filename(PurePosixPath(urlsplit(event["fileUrl"]).path).name or "file")
        job = AttachmentJob(
            domain=Domain(NAME),
            media_id=event["itemId"],
            event_id=event["event_id"],
            url_display=sanitize_url(event["fileUrl"]),
            blob_path=f"{sanitize_component(event['itemId'])}/{name}",
            file_name=name,
            file_type=PurePosixPath(name).suffix.lstrip(".").upper(),
            check_expiry=False,
        )
        plans.append(EventPlan(Domain(NAME), event["event_id"], attachments=[(job, event["fileUrl"])]))
    return EnrichOutcome(plans=plans, counters={"enriched": len(plans)})


def inventory_row(job: AttachmentJob, _url: str | None, now: datetime) -> tuple[Table, dict[str, Any]]:
    return Table(TABLE), {
        "item_id": job.media_id,
        "blob_path": job.blob_path,
        "sha256": job.sha256,
        "bytes_downloaded": job.bytes_downloaded or 0,
        "downloaded_at": (job.downloaded_at or now).isoformat(),
        "updated_at": now.isoformat(),
    }


def spec() -> DomainSpec:
    return DomainSpec(
        domain=NAME,  # type: ignore[arg-type]  # a plain name: registering it makes it a Domain
        parse=parse,
        planner=planner,
        event_table=TABLE,  # type: ignore[arg-type]  # likewise a Table once registered
        tables=(table(TABLE, ITEMS, ("item_id",), MergeMode.UPSERT),),
        inventory_row=inventory_row,
        enrich=enrich,
        record_key_fields=("itemId",),
    )
