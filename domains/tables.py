"""How a domain declares its Delta tables: a schema, a key and a merge mode per table.

A domain's plug-in lists its :class:`TableSpec` objects; ``writers.tables`` serves the flusher
every registered domain's tables. Every table has a key and never holds two rows with the same
key (DECISIONS "claimx", "xact"); how a staged row meets an existing row is its
:class:`MergeMode`. Every column is nullable: rows are coerced leniently (a bad value becomes
null) so that one malformed row can never block a table's flush. Timestamps are microseconds in
UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa

from domains.names import Table

STR = pa.string()
INT = pa.int64()
FLOAT = pa.float64()
BOOL = pa.bool_()
TS = pa.timestamp("us", tz="UTC")
DATE = pa.date32()

#: Columns filled with the flush time when a row leaves them null (SPEC §4.5 "filled with now").
NOW_COLUMNS = ("created_at", "updated_at")


def schema(*columns: tuple[str, pa.DataType]) -> pa.Schema:
    """A schema of nullable columns, in the given order; a repeated name is an error."""
    names = [name for name, _ in columns]
    if len(names) != len(set(names)):
        raise ValueError(f"duplicate column in schema: {names}")
    return pa.schema([pa.field(name, dtype, nullable=True) for name, dtype in columns])


def strings(*names: str) -> list[tuple[str, pa.DataType]]:
    return [(name, STR) for name in names]


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


def table(
    name: Table | str,
    table_schema: pa.Schema,
    keys: tuple[str, ...],
    mode: MergeMode,
    partition_by: tuple[str, ...] = (),
    derived_dates: tuple[tuple[str, str], ...] = (),
) -> TableSpec:
    """A :class:`TableSpec` with the default preserved columns (``created_at``). A plug-in's table
    name may be a plain string: registering the domain makes it a ``Table``."""
    return TableSpec(
        name=name,  # type: ignore[arg-type]  # a plug-in's str becomes a Table at registration
        schema=table_schema,
        keys=keys,
        partition_by=partition_by,
        mode=mode,
        derived_dates=derived_dates,
    )
