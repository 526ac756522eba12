"""The table registry the flusher reads: every registered domain's :class:`TableSpec`.

Tables are declared by their domain (``domains/<name>/tables.py``, or a plug-in's own module);
``TABLES`` serves them by name, looked up in ``domains.registry`` when first asked, so a plug-in
domain's tables are flushed, read and maintained like the built-in ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from core.settings import Settings
from domains.names import Table
from domains.registry import registered_tables
from domains.tables import NOW_COLUMNS, MergeMode, TableSpec
from writers.storage import storage_options

__all__ = ["MergeMode", "NOW_COLUMNS", "TableSpec", "TABLES", "table_uri", "storage_options", "app_id"]


class _RegisteredTables(Mapping[Table, TableSpec]):
    """Read-only view of the registered domains' tables (registration may happen after import)."""

    def __getitem__(self, table: Table | str) -> TableSpec:
        return registered_tables()[Table(table)]

    def __iter__(self) -> Iterator[Table]:
        return iter(registered_tables())

    def __len__(self) -> int:
        return len(registered_tables())


TABLES: Mapping[Table, TableSpec] = _RegisteredTables()


def table_uri(settings: Settings, table: Table | str) -> str:
    """Where the table lives: ``{tables_root}/{table}`` (a local path or an ``az://``/``abfss://`` URI)."""
    return f"{settings.tables_root.rstrip('/')}/{Table(table).value}"


def app_id(table: Table | str) -> str:
    """The Delta application-transaction id of the flusher of ``table``."""
    return f"claims-pipeline:{Table(table).value}"
