"""Lenient value coercion for ClaimX API fields (SPEC §4.4.1, "Value coercion everywhere").

Contracts (every function accepts ``None`` and returns ``None`` for it):

* :func:`text` — strings trimmed, empty ⇒ ``None``; numbers become their ``str``; bools ``"true"``/``"false"``.
* :func:`integer` — ints as is; integral floats and numeric strings (``" 42 "``, ``"42.0"``) parsed;
  anything else (``"abc"``, ``1.5``, bools) ⇒ ``None``.
* :func:`number` — floats for coordinates; bad ⇒ ``None``.
* :func:`boolean` — bools as is; ``"true"/"1"/"yes"`` (any case) ⇒ ``True``; other non-empty strings
  and numbers ⇒ their truth value; empty string ⇒ ``None``.
* :func:`decimal_text` — an exact decimal string (``1834.275`` ⇒ ``"1834.275"``); bad ⇒ ``None``.
* :func:`timestamp` — an ISO-8601 string with an explicit offset (``Z`` ⇒ ``+00:00``, naive ⇒ UTC);
  a value that does not parse is kept as its trimmed text rather than dropped.
* :func:`iso` — a ``datetime`` as an ISO string in UTC.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

_TRUE_WORDS = frozenset({"true", "1", "yes"})


def text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True) if value else None
    result = str(value).strip()
    return result or None


def integer(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, (str, Decimal)):
        try:
            parsed = Decimal(str(value).strip())
        except InvalidOperation:
            return None
        if parsed.is_finite() and parsed == parsed.to_integral_value():
            return int(parsed)
    return None


def number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        parsed = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
    return parsed if math.isfinite(parsed) else None


def boolean(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        return (word in _TRUE_WORDS) if word else None
    if isinstance(value, (int, float)):
        return bool(value)
    return None


def decimal_text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        # str() of a float is its shortest round-tripping form, so 1834.275 stays "1834.275".
        parsed = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return str(parsed) if parsed.is_finite() else None


def timestamp(value: Any) -> str | None:
    raw = text(value)
    if raw is None:
        return None
    parsed = parse_datetime(raw)
    return iso(parsed) if parsed is not None else raw


def parse_datetime(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime from a datetime or ISO string; ``None`` when it does not parse."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not isinstance(value, str) or not value.strip():
        return None
    candidate = value.strip()
    if candidate[-1:] in ("Z", "z"):
        candidate = candidate[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def iso(moment: datetime) -> str:
    """``moment`` in UTC as ISO-8601 with ``+00:00`` (naive ⇒ taken as UTC)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.isoformat()
