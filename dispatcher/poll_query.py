"""The poller's KQL: what one page asks Kusto for, and how rows are filtered against the checkpoint.

Pure functions (no I/O), tested without a cluster; see ``dispatcher/poller.py`` for the loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.errors import ConfigError, PermanentError
from core.settings import Settings
from dispatcher.kusto import kql_datetime, kql_string, kql_table, parse_time, ticks_of
from domains import registry
from domains.names import Domain

INGESTION_COLUMN = "ingestion_time"


# --- query ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    domain: Domain
    cluster_url: str
    database: str
    table: str
    tiebreak_column: str | None

    @classmethod
    def from_settings(cls, settings: Settings, domain: Domain) -> Source:
        prefix = domain.value
        url = settings.eventhouse_cluster_urls.get(prefix)
        database = settings.eventhouse_databases.get(prefix)
        if not url or not database:
            raise ConfigError(
                f"the {prefix} poller needs {prefix.upper()}_EVENTHOUSE_CLUSTER_URL and "
                f"{prefix.upper()}_EVENTHOUSE_DATABASE"
            )
        spec = registry.spec_of(domain)
        table = settings.eventhouse_tables.get(prefix) or spec.poll_default_table
        return cls(domain, url, database, table, spec.poll_tiebreak_column)


@dataclass(frozen=True, order=True)
class Cursor:
    """Position of the last published row: ingestion time in ticks, tie-break id (``""`` if none)."""

    ticks: int
    key: str = ""


def build_query(
    source: Source, *, cursor: Cursor | None, start_ticks: int, end_ticks: int, batch_size: int
) -> str:
    """The page query: rows after ``cursor`` (or from ``start_ticks`` on), before ``end_ticks``."""
    tiebreak = source.tiebreak_column
    if cursor is None:
        after = f"ingestion_time() >= {kql_datetime(start_ticks)}"
    elif tiebreak is not None:
        at = kql_datetime(cursor.ticks)
        after = (
            f"ingestion_time() > {at} or (ingestion_time() == {at} and "
            f"strcmp(tostring({tiebreak}), {kql_string(cursor.key)}) > 0)"
        )
    else:  # claimx: the checkpoint is always the end of a whole ingestion-time group
        after = f"ingestion_time() > {kql_datetime(cursor.ticks)}"
    order = f"{INGESTION_COLUMN} asc" + (f", {tiebreak} asc" if tiebreak else "")
    return "\n".join(
        [
            kql_table(source.table),
            f"| where {after}",
            f"| where ingestion_time() < {kql_datetime(end_ticks)}",
            f"| extend {INGESTION_COLUMN} = ingestion_time()",
            f"| order by {order}",
            f"| take {int(batch_size)}",
        ]
    )


def build_group_query(source: Source, ticks: int) -> str:
    """Every row of one ingestion time (claimx: a full page that is a single group)."""
    return "\n".join(
        [
            kql_table(source.table),
            f"| where ingestion_time() == {kql_datetime(ticks)}",
            f"| extend {INGESTION_COLUMN} = ingestion_time()",
            f"| order by {INGESTION_COLUMN} asc",
        ]
    )


def row_cursor(source: Source, row: dict[str, Any]) -> Cursor:
    value = row.get(INGESTION_COLUMN)
    try:
        ticks = ticks_of(value) if isinstance(value, datetime) else parse_time(str(value))
    except (TypeError, ValueError) as exc:
        raise PermanentError(
            f"{source.domain.value} row without a valid {INGESTION_COLUMN}: {value!r}"
        ) from exc
    key = row.get(source.tiebreak_column) if source.tiebreak_column else None
    return Cursor(ticks, "" if key is None else str(key))


def after_cursor(
    source: Source, rows: Sequence[dict[str, Any]], cursor: Cursor | None
) -> list[dict[str, Any]]:
    """Client-side re-filter: only rows strictly after ``cursor`` in the query's order."""
    if cursor is None:
        return list(rows)
    if source.tiebreak_column is None:
        return [row for row in rows if row_cursor(source, row).ticks > cursor.ticks]
    return [row for row in rows if row_cursor(source, row) > cursor]


def complete_groups(source: Source, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A full page without the rows of its last ingestion time (which may continue past the page)."""
    if not rows:
        return []
    last = row_cursor(source, rows[-1]).ticks
    return [row for row in rows if row_cursor(source, row).ticks < last]


# --- checkpoint -------------------------------------------------------------------------------
