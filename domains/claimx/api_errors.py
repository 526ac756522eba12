"""ClaimX API error classification (SPEC §5 "HTTP status classification").

| Status | Category | Message prefix |
|---|---|---|
| 401 | auth | ``Unauthorized (401): <url>`` |
| 403 | permanent | ``Forbidden (403): <url>`` |
| 404 | permanent | ``Not found (404): <url>`` |
| 429 | transient | ``Rate limited (429): <url>`` |
| 500, 502, 503, 504 | transient | ``Server error (<s>): <url>`` |
| other 4xx | permanent | ``Client error (<s>): <url>`` |
| anything else | transient | ``HTTP error (<s>): <url>`` |
| timeout | transient | ``Timeout after <n>s: <url>`` |
| connection error | transient | ``Connection error: <url> (<kind>)`` |

URLs pass through :func:`core.security.redact.sanitize_url`; no message ever contains request
headers (the Basic token lives only there). Only transient errors count for the circuit breaker
(:func:`counts_for_breaker`): auth and permanent failures do not.
"""

from __future__ import annotations

import email.utils
import math
from datetime import UTC, datetime

from core.errors import CircuitOpenError, ErrorCategory, PipelineError
from core.security.redact import sanitize_url

_SERVER_ERRORS = frozenset({500, 502, 503, 504})


class ClaimXApiError(PipelineError):
    """A failed ClaimX API call; ``category`` decides retry vs dead letter."""


class ClaimXCircuitOpenError(ClaimXApiError, CircuitOpenError):
    """The ``claimx_api`` breaker is open: no request was made. Category ``circuit_open``."""

    category = ErrorCategory.CIRCUIT_OPEN


def classify_status(status: int, url: str, *, retry_after: str | None = None) -> ClaimXApiError:
    """The error for a non-200 response (SPEC §5 table). ``retry_after`` is the raw header value."""
    shown = sanitize_url(url)
    if status == 401:
        return ClaimXApiError(f"Unauthorized (401): {shown}", category=ErrorCategory.AUTH, http_status=401)
    if status == 403:
        return ClaimXApiError(f"Forbidden (403): {shown}", category=ErrorCategory.PERMANENT, http_status=403)
    if status == 404:
        return ClaimXApiError(f"Not found (404): {shown}", category=ErrorCategory.PERMANENT, http_status=404)
    wait = parse_retry_after(retry_after)
    if status == 429:
        return ClaimXApiError(
            f"Rate limited (429): {shown}",
            category=ErrorCategory.TRANSIENT,
            http_status=429,
            retry_after_seconds=wait,
        )
    if status in _SERVER_ERRORS:
        return ClaimXApiError(
            f"Server error ({status}): {shown}",
            category=ErrorCategory.TRANSIENT,
            http_status=status,
            retry_after_seconds=wait,
        )
    if 400 <= status < 500:
        return ClaimXApiError(
            f"Client error ({status}): {shown}", category=ErrorCategory.PERMANENT, http_status=status
        )
    return ClaimXApiError(
        f"HTTP error ({status}): {shown}",
        category=ErrorCategory.TRANSIENT,
        http_status=status,
        retry_after_seconds=wait,
    )


def timeout_error(timeout_seconds: float, url: str) -> ClaimXApiError:
    return ClaimXApiError(
        f"Timeout after {timeout_seconds:g}s: {sanitize_url(url)}", category=ErrorCategory.TRANSIENT
    )


def connection_error(url: str, kind: str) -> ClaimXApiError:
    """``kind`` is the exception class name only: library messages may echo request details."""
    return ClaimXApiError(f"Connection error: {sanitize_url(url)} ({kind})", category=ErrorCategory.TRANSIENT)


def invalid_body_error(url: str) -> ClaimXApiError:
    """A 200 whose body is not JSON: a server-side fault, retried."""
    return ClaimXApiError(
        f"Invalid JSON response (200): {sanitize_url(url)}", category=ErrorCategory.TRANSIENT, http_status=200
    )


def invalid_id_error(what: str, value: object) -> ClaimXApiError:
    """An id the API cannot take (it expects integers): permanent, no request made."""
    shown = str(value)[:40]
    return ClaimXApiError(
        f"Invalid {what} {shown!r}: the ClaimX API needs an integer", category=ErrorCategory.PERMANENT
    )


def counts_for_breaker(error: PipelineError) -> bool:
    """SPEC §5: only retryable API errors, timeouts and connection errors count; auth/permanent do not."""
    return error.category is ErrorCategory.TRANSIENT


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); ``None`` when absent/bad."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
