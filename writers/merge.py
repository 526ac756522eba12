"""One Delta merge per batch, shaped by the table's :class:`~writers.tables.MergeMode` (SPEC §8.4).

* Predicate: ``t.k = s.k`` for every key column; null-safe (``IS NOT DISTINCT FROM``) for
  composite keys, whose parts may be null (a contact without e-mail).
* INSERT_NEW: insert rows whose key is absent, nothing else.
* UPSERT: matched rows get ``coalesce(s.c, t.c)`` for every non-key column (a value is never
  overwritten with null); preserved columns keep the target's value (``coalesce(t.c, s.c)``).
* UPSERT_IF_MODIFIED: as UPSERT, only where ``s.modified_date <> t.modified_date`` or the target's
  ``modified_date`` is null.
"""

from __future__ import annotations

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction

from writers.tables import MergeMode, TableSpec

SOURCE, TARGET = "s", "t"


def merge_batch(
    uri: str,
    options: dict[str, str] | None,
    spec: TableSpec,
    batch: pa.Table,
    transaction: Transaction,
    table: DeltaTable | None = None,
) -> int:
    """Merge ``batch`` into the table at ``uri`` in one commit recording ``transaction``.

    ``table``: the table as the caller loaded it (it moves to the new version); else it is loaded
    here, and created (schema and partitions, no data) when it does not exist. A table created by
    an older schema gains the new columns (``merge_schema``). Returns rows inserted plus rows
    updated.
    """
    if table is None:
        table = _open_or_create(uri, options, spec)
    merger = table.merge(
        batch,
        predicate=key_predicate(spec),
        source_alias=SOURCE,
        target_alias=TARGET,
        merge_schema=True,
        commit_properties=CommitProperties(app_transactions=[transaction]),
    )
    if spec.mode is not MergeMode.INSERT_NEW:
        existing = frozenset(field.name for field in table.schema().fields)
        merger = merger.when_matched_update(
            update_expressions(spec, existing), predicate=update_condition(spec)
        )
    metrics = merger.when_not_matched_insert_all().execute()
    return int(metrics.get("num_target_rows_inserted", 0)) + int(metrics.get("num_target_rows_updated", 0))


def key_predicate(spec: TableSpec) -> str:
    operator = "IS NOT DISTINCT FROM" if len(spec.keys) > 1 else "="
    # Parenthesised: DataFusion binds AND tighter than IS NOT DISTINCT FROM.
    return " AND ".join(f"({_col(TARGET, key)} {operator} {_col(SOURCE, key)})" for key in spec.keys)


def update_expressions(spec: TableSpec, target_columns: frozenset[str] | None = None) -> dict[str, str]:
    """SET clauses of a matched row. A column the target does not have yet (a table created by an
    older schema, evolved by this merge) simply takes the source value."""

    def has(col: str) -> bool:
        return target_columns is None or col in target_columns

    updates = {
        col: f"coalesce({_col(SOURCE, col)}, {_col(TARGET, col)})" if has(col) else _col(SOURCE, col)
        for col in spec.update_columns
    }
    for col in spec.preserve:
        if col not in spec.keys:
            updates[col] = (
                f"coalesce({_col(TARGET, col)}, {_col(SOURCE, col)})" if has(col) else _col(SOURCE, col)
            )
    return updates


def update_condition(spec: TableSpec) -> str | None:
    if spec.mode is MergeMode.UPSERT_IF_MODIFIED:
        src, tgt = _col(SOURCE, "modified_date"), _col(TARGET, "modified_date")
        return f"({src} <> {tgt}) OR ({tgt} IS NULL)"
    return None


def _col(alias: str, name: str) -> str:
    return f'{alias}."{name}"'


def _open_or_create(uri: str, options: dict[str, str] | None, spec: TableSpec) -> DeltaTable:
    if DeltaTable.is_deltatable(uri, storage_options=options):
        return DeltaTable(uri, storage_options=options)
    return DeltaTable.create(
        uri,
        schema=spec.schema,
        mode="ignore",
        partition_by=list(spec.partition_by) or None,
        storage_options=options,
    )
