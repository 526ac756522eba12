"""Staged JSON rows -> an Arrow table in the exact schema of its Delta table.

Coercion is lenient by design: a value that cannot be read as its column's type becomes null
instead of failing the batch, because a batch that can never be written would block its table
for good. Rules (SPEC §4.4.1 "value coercion", §4.5 "writers coerce ISO strings"):

* timestamps: ISO-8601 strings or datetimes -> µs UTC (a naive value is taken as UTC);
* dates: ``YYYY-MM-DD`` or any ISO timestamp (its UTC date);
* ints: ints, integral floats, numeric strings; floats likewise; bools: ``true/1/yes`` and
  ``false/0/no`` (case-insensitive) or real booleans;
* strings: as is; numbers and booleans as their JSON text; objects and lists as JSON text;
* columns a row does not carry are null; keys not in the schema are dropped.

Rows arrive as NDJSON (one JSON object per line, as :func:`writers.staging.encode_row` writes
them) and are parsed natively by polars with every column read as text, then converted.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from writers.staging import encode_row
from writers.tables import MergeMode, TableSpec

_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Batch:
    """A coerced batch: the table to merge and how many staged rows could not be used."""

    table: pa.Table
    rows_in: int
    dropped_unreadable: int
    dropped_no_key: int


def build_batch(spec: TableSpec, ndjson: bytes, now: datetime | None = None) -> Batch:
    """Decode, coerce, de-duplicate and default staged rows (newline-separated JSON objects).

    Lines that are not JSON objects, and rows whose key columns are all null, are dropped (and
    counted): neither can ever be merged by key. Duplicate keys are combined (:func:`combine`).
    """
    now = now or datetime.now(UTC)
    frame, rows_in, unreadable = read_rows(spec, ndjson)
    table = coerce_frame(spec, frame)
    keyed = _drop_keyless(table, spec.keys)
    return Batch(
        table=fill_defaults(combine(keyed, spec), spec, now),
        rows_in=rows_in,
        dropped_unreadable=unreadable,
        dropped_no_key=table.num_rows - keyed.num_rows,
    )


def read_rows(spec: TableSpec, ndjson: bytes) -> tuple[pl.DataFrame, int, int]:
    """NDJSON -> a frame with one String column per table column (JSON scalars as text, objects
    and lists as JSON); returns ``(frame, rows_in, unreadable)``.

    The whole batch is parsed natively in one call; only when that fails does it fall back to
    decoding line by line, dropping exactly the lines that are not JSON objects and re-encoding
    the others as strict JSON (``NaN``/``Infinity`` become null).
    """
    lines = [line for line in ndjson.split(b"\n") if line.strip()]
    schema: dict[str, pl.DataType] = {name: pl.String() for name in spec.schema.names}
    try:
        return _read_ndjson(lines, schema), len(lines), 0
    except pl.exceptions.PolarsError:
        good = [strict for line in lines if (strict := _strict_line(line)) is not None]
    try:
        frame = _read_ndjson(good, schema)
    except pl.exceptions.PolarsError:  # last resort: one line at a time, keep what parses
        frames = [frame for line in good if (frame := _read_one(line, schema)) is not None]
        frame = pl.concat(frames) if frames else _read_ndjson([], schema)
    return frame, len(lines), len(lines) - frame.height


def coerce_frame(spec: TableSpec, frame: pl.DataFrame) -> pa.Table:
    """String frame -> Arrow table in ``spec.schema``.

    Each distinct text of a non-string column is converted once (``to_int``, ``to_timestamp``, …)
    and the result is mapped back onto the column with Arrow kernels, so the Python work grows
    with the number of distinct values, not with rows x columns.
    """
    arrays = []
    for field in spec.schema:
        texts = frame.get_column(field.name).to_arrow().cast(pa.string())
        if pa.types.is_string(field.type):
            arrays.append(texts)
            continue
        convert = _converter(field.type)
        distinct = pc.unique(texts.drop_null()).to_pylist()
        converted = pa.array([convert(text) for text in distinct], type=field.type)
        positions = pc.index_in(texts, value_set=pa.array(distinct, type=pa.string()))
        arrays.append(converted.take(positions))
    return pa.Table.from_arrays(arrays, schema=spec.schema)


def _read_ndjson(lines: list[bytes], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.read_ndjson(io.BytesIO(b"\n".join(lines)), schema=schema)


def _read_one(line: bytes, schema: dict[str, pl.DataType]) -> pl.DataFrame | None:
    try:
        return _read_ndjson([line], schema)
    except pl.exceptions.PolarsError:
        return None


def _strict_line(line: bytes) -> bytes | None:
    """A JSON-object line re-encoded as strict JSON, or ``None`` when it is not a JSON object."""
    try:
        row = json.loads(line)
    except ValueError:  # includes invalid UTF-8
        return None
    return encode_row(row).encode() if isinstance(row, dict) else None


def fill_defaults(table: pa.Table, spec: TableSpec, now: datetime) -> pa.Table:
    """Fill null ``now_columns`` with ``now`` and null ``derived_dates`` with their timestamp's UTC date.

    Runs after :func:`combine`, so an explicit value staged later for a key beats the default.
    """
    for name in spec.now_columns:
        index = table.schema.get_field_index(name)
        filled = pc.fill_null(table[name], pa.scalar(now, type=table.schema.field(name).type))
        table = table.set_column(index, table.schema.field(name), filled)
    for date_col, ts_col in spec.derived_dates:
        index = table.schema.get_field_index(date_col)
        field = table.schema.field(date_col)
        derived = pc.cast(table[ts_col], field.type)
        table = table.set_column(index, field, pc.coalesce(table[date_col], derived))
    return table


def combine(table: pa.Table, spec: TableSpec) -> pa.Table:
    """Leave one row per key.

    INSERT_NEW keeps the first row of a key (the table never updates anyway). The UPSERT modes
    fold rows in staging order: a later non-null value overwrites an earlier one, a preserved
    column (``created_at``) keeps its first non-null value. Null key parts compare equal.
    """
    if table.num_rows < 2:
        return table
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    keys = list(spec.keys)
    if not frame.select(pl.struct(keys).is_duplicated().any()).item():
        return table
    if spec.mode is MergeMode.INSERT_NEW:
        combined = frame.unique(subset=keys, keep="first", maintain_order=True)
    else:
        aggregations = [
            (pl.col(c).drop_nulls().first() if c in spec.preserve else pl.col(c).drop_nulls().last())
            for c in frame.columns
            if c not in spec.keys
        ]
        combined = frame.group_by(keys, maintain_order=True).agg(aggregations)
    return combined.select(spec.schema.names).to_arrow().cast(spec.schema)


def _drop_keyless(table: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    has_key = None
    for key in keys:
        valid = pc.is_valid(table[key])
        has_key = valid if has_key is None else pc.or_(has_key, valid)
    return table if has_key is None else table.filter(has_key)


# --- value converters ------------------------------------------------------------------------


def _converter(dtype: pa.DataType) -> Callable[[Any], Any]:
    if pa.types.is_integer(dtype):
        return to_int
    if pa.types.is_floating(dtype):
        return to_float
    if pa.types.is_boolean(dtype):
        return to_bool
    if pa.types.is_timestamp(dtype):
        return to_timestamp
    if pa.types.is_date(dtype):
        return to_date
    raise TypeError(f"no coercion for Arrow type {dtype}")


def to_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        result = value
    elif isinstance(value, float):
        if not value.is_integer():
            return None
        result = int(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            result = int(text)
        except ValueError:
            as_float = to_float(text)
            if as_float is None or not as_float.is_integer():
                return None
            result = int(as_float)
    else:
        return None
    return result if _INT64_MIN <= result <= _INT64_MAX else None


def to_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
        return result if result == result and abs(result) != float("inf") else None  # no NaN/inf
    return None


def to_bool(value: Any) -> bool | None:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        number = to_float(text)
        return None if number is None else number != 0
    return None


def to_timestamp(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def to_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return to_timestamp(value).date()  # type: ignore[union-attr]  # a datetime in gives a datetime out
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 10:  # a plain date
            try:
                return date.fromisoformat(text)
            except ValueError:
                return None
        stamp = to_timestamp(text)
        return stamp.date() if stamp else None
    return None
