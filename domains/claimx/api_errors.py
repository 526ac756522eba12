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

from core.errors import CircuitOpenError, ErrorCategory, PipelineError
from core.http_rules import parse_retry_after, status_category
from core.security.redact import sanitize_url

_SERVER_ERRORS = frozenset({500, 502, 503, 504})
_LABELS = {401: "Unauthorized", 403: "Forbidden", 404: "Not found", 429: "Rate limited"}


class ClaimXApiError(PipelineError):
    """A failed ClaimX API call; ``category`` decides retry vs dead letter."""


class ClaimXCircuitOpenError(ClaimXApiError, CircuitOpenError):
    """The ``claimx_api`` breaker is open: no request was made. Category ``circuit_open``."""

    category = ErrorCategory.CIRCUIT_OPEN


def classify_status(status: int, url: str, *, retry_after: str | None = None) -> ClaimXApiError:
    """The error for a non-200 response (SPEC §5 table). ``retry_after`` is the raw header value.

    The category is the shared rule (:func:`core.http_rules.status_category`), except that a
    status outside 4xx/5xx is retried here (the API answered something it should not have).
    """
    shown = sanitize_url(url)
    category = status_category(status, otherwise=ErrorCategory.TRANSIENT)
    if status in _LABELS:
        label = _LABELS[status]
    elif status in _SERVER_ERRORS:
        label = "Server error"
    elif 400 <= status < 500:
        label = "Client error"
    else:
        label = "HTTP error"
    retryable = category is ErrorCategory.TRANSIENT
    return ClaimXApiError(
        f"{label} ({status}): {shown}",
        category=category,
        http_status=status,
        retry_after_seconds=parse_retry_after(retry_after) if retryable else None,
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


def int_id(what: str, value: str | int) -> int:
    """``value`` as the integer id the API expects; anything else is :func:`invalid_id_error`."""
    if isinstance(value, bool):
        raise invalid_id_error(what, value)
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text.lstrip("-").isdigit():
        raise invalid_id_error(what, value)
    return int(text)


def counts_for_breaker(error: PipelineError) -> bool:
    """SPEC §5: only retryable API errors, timeouts and connection errors count; auth/permanent do not."""
    return error.category is ErrorCategory.TRANSIENT
