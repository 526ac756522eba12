"""The table registry: one :class:`TableSpec` per :class:`~domains.names.Table` (schema, key, merge mode).

Every table has a key and never holds two rows with the same key (DECISIONS "claimx", "xact").
How a staged row meets an existing row is the table's :class:`MergeMode`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa

from core.settings import Settings
from domains.names import Table
from writers import schemas
from writers.storage import storage_options

__all__ = ["MergeMode", "TableSpec", "TABLES", "table_uri", "storage_options", "app_id"]

#: Columns filled with the flush time when a row leaves them null (SPEC §4.5 "filled with now").
NOW_COLUMNS = ("created_at", "updated_at")


class MergeMode(StrEnum):
    INSERT_NEW = "insert_new"
    """Insert rows whose key is absent; never update an existing row."""
    UPSERT = "upsert"
    """Update matched rows column by column with ``coalesce(source, target)`` (a value is never
    overwritten with null), keep the preserved columns; insert the others."""
    UPSERT_IF_MODIFIED = "upsert_if_modified"
    """As UPSERT, but a matched row is only updated when ``source.modified_date`` differs from
    ``target.modified_date`` or the target's is null (task templates)."""


@dataclass(frozen=True)
class TableSpec:
    """What the flusher needs to know about one table.

    ``derived_dates`` pairs a date column with a timestamp column it is the UTC date of; the
    flusher fills the date from the first pair whose timestamp is set when a row leaves it null
    (so a partition column is never null: ``created_at`` is the last resort, always set).
    """

    name: Table
    schema: pa.Schema
    keys: tuple[str, ...]
    partition_by: tuple[str, ...]
    mode: MergeMode
    preserve: tuple[str, ...] = ("created_at",)
    derived_dates: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        names = set(self.schema.names)
        wanted = [
            *self.keys,
            *self.partition_by,
            *self.preserve,
            *(col for pair in self.derived_dates for col in pair),
        ]
        missing = [col for col in wanted if col not in names]
        if missing or not self.keys:
            raise ValueError(f"{self.name}: keys/partitions/preserved columns not in schema: {missing}")

    @property
    def now_columns(self) -> tuple[str, ...]:
        return tuple(col for col in NOW_COLUMNS if col in self.schema.names)

    @property
    def update_columns(self) -> tuple[str, ...]:
        """Columns an UPSERT sets on a matched row: everything but keys and preserved columns."""
        skip = set(self.keys) | set(self.preserve)
        return tuple(col for col in self.schema.names if col not in skip)


def _spec(
    name: Table,
    schema: pa.Schema,
    keys: tuple[str, ...],
    mode: MergeMode,
    partition_by: tuple[str, ...] = (),
    derived_dates: tuple[tuple[str, str], ...] = (),
) -> TableSpec:
    return TableSpec(
        name=name, schema=schema, keys=keys, partition_by=partition_by, mode=mode, derived_dates=derived_dates
    )


TABLES: dict[Table, TableSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            Table.XACT_EVENTS,
            schemas.XACT_EVENTS,
            ("trace_id",),
            MergeMode.INSERT_NEW,
            ("event_date",),
            (("event_date", "ingested_at"), ("event_date", "created_at"), ("created_date", "created_at")),
        ),
        _spec(
            Table.XACT_ATTACHMENTS,
            schemas.XACT_ATTACHMENTS,
            ("media_id",),
            MergeMode.INSERT_NEW,
            ("event_date",),
            (("event_date", "created_at"),),
        ),
        _spec(
            Table.XACT_ATTACHMENTS_FAILED, schemas.XACT_ATTACHMENTS_FAILED, ("media_id",), MergeMode.UPSERT
        ),
        _spec(
            Table.CLAIMX_EVENTS,
            schemas.CLAIMX_EVENTS,
            ("event_id",),
            MergeMode.INSERT_NEW,
            ("event_date",),
            (("event_date", "ingested_at"), ("event_date", "created_at")),
        ),
        _spec(Table.CLAIMX_PROJECTS, schemas.CLAIMX_PROJECTS, ("project_id",), MergeMode.UPSERT),
        _spec(
            Table.CLAIMX_CONTACTS,
            schemas.CLAIMX_CONTACTS,
            ("project_id", "contact_email", "contact_type"),
            MergeMode.UPSERT,
            derived_dates=(("created_date", "created_at"),),
        ),
        _spec(
            Table.CLAIMX_ATTACHMENT_METADATA,
            schemas.CLAIMX_ATTACHMENT_METADATA,
            ("media_id",),
            MergeMode.UPSERT,
        ),
        _spec(Table.CLAIMX_TASKS, schemas.CLAIMX_TASKS, ("assignment_id",), MergeMode.UPSERT),
        _spec(
            Table.CLAIMX_TASK_TEMPLATES,
            schemas.CLAIMX_TASK_TEMPLATES,
            ("task_id",),
            MergeMode.UPSERT_IF_MODIFIED,
        ),
        _spec(Table.CLAIMX_EXTERNAL_LINKS, schemas.CLAIMX_EXTERNAL_LINKS, ("link_id",), MergeMode.UPSERT),
        _spec(
            Table.CLAIMX_VIDEO_COLLAB,
            schemas.CLAIMX_VIDEO_COLLAB,
            ("video_collaboration_id",),
            MergeMode.UPSERT,
        ),
        _spec(Table.CLAIMX_ATTACHMENTS, schemas.CLAIMX_ATTACHMENTS, ("media_id",), MergeMode.UPSERT),
    )
}


def table_uri(settings: Settings, table: Table | str) -> str:
    """Where the table lives: ``{tables_root}/{table}`` (a local path or an ``az://``/``abfss://`` URI)."""
    return f"{settings.tables_root.rstrip('/')}/{Table(table).value}"


def app_id(table: Table | str) -> str:
    """The Delta application-transaction id of the flusher of ``table``."""
    return f"claims-pipeline:{Table(table).value}"
