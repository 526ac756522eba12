"""HTTP rules every client of the pipeline shares: ``Retry-After`` and status -> error category.

One home for both (downloads, the ClaimX API, storage calls and the Eventhouse poller used to
carry a copy each). A caller that differs from the common rule says how, by argument, so the
difference is visible where it is made:

* :func:`parse_retry_after` - delta-seconds or an HTTP date, as seconds from now; ``None`` when
  absent, unreadable, negative or not finite (a date in the past is ``0``). It does not bound the value: what a wait
  may be is the task layer's decision (``tasks.base``), not the parser's.
* :func:`status_category` - 401 auth; 429 and 5xx transient; other 4xx permanent; anything else
  ``otherwise`` (unknown by default). ``auth`` / ``transient`` add statuses to those classes
  (downloads: a 302 to a login page is auth; storage: 408 is transient; Kusto: 403 is auth).
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Collection
from datetime import UTC, datetime

from core.errors import ErrorCategory


def parse_retry_after(value: str | bytes | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value (see the module contract)."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
        if not math.isfinite(seconds):
            return None
        return max(0.0, seconds)  # a date in the past: go now
    if not math.isfinite(seconds) or seconds < 0:
        return None  # delta-seconds is a non-negative number (RFC 9110 §10.2.3)
    return seconds


def status_category(
    status: int | None,
    *,
    auth: Collection[int] = (),
    transient: Collection[int] = (),
    otherwise: ErrorCategory = ErrorCategory.UNKNOWN,
) -> ErrorCategory:
    """The error category of a non-success HTTP status (see the module contract)."""
    if status is None:
        return ErrorCategory.UNKNOWN
    if status == 401 or status in auth:
        return ErrorCategory.AUTH
    if status == 429 or status in transient or 500 <= status <= 599:
        return ErrorCategory.TRANSIENT
    if 400 <= status <= 499:
        return ErrorCategory.PERMANENT
    return otherwise
