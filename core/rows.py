"""Rows as staged: one compact, strict JSON object per line (``writers.staging``, ``core.state.RowStash``)."""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any


def encode_row(row: dict[str, Any]) -> str:
    """One row as compact, strict JSON on one line.

    Datetimes/dates become ISO strings, decimals exact strings, enums their value; NaN and
    infinities (which strict JSON cannot carry) become null.
    """
    try:
        return json.dumps(
            row, default=_json_default, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except ValueError:
        return json.dumps(
            _finite(row), default=_json_default, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"row value of type {type(value).__name__} is not JSON serialisable")
