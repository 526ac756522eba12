"""The SPEC §5 status classification table, as pure functions (the HTTP path is in integration)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.errors import CircuitOpenError, ErrorCategory
from domains.claimx.api_errors import (
    ClaimXApiError,
    ClaimXCircuitOpenError,
    classify_status,
    connection_error,
    counts_for_breaker,
    parse_retry_after,
    timeout_error,
)

URL = "https://claimx-api.example.com/service/cxedirest/export/project/1"

TABLE = [
    (401, ErrorCategory.AUTH, "Unauthorized (401): "),
    (403, ErrorCategory.PERMANENT, "Forbidden (403): "),
    (404, ErrorCategory.PERMANENT, "Not found (404): "),
    (429, ErrorCategory.TRANSIENT, "Rate limited (429): "),
    (500, ErrorCategory.TRANSIENT, "Server error (500): "),
    (502, ErrorCategory.TRANSIENT, "Server error (502): "),
    (503, ErrorCategory.TRANSIENT, "Server error (503): "),
    (504, ErrorCategory.TRANSIENT, "Server error (504): "),
    (400, ErrorCategory.PERMANENT, "Client error (400): "),
    (418, ErrorCategory.PERMANENT, "Client error (418): "),
    (501, ErrorCategory.TRANSIENT, "HTTP error (501): "),
    (302, ErrorCategory.TRANSIENT, "HTTP error (302): "),
    (204, ErrorCategory.TRANSIENT, "HTTP error (204): "),
]


@pytest.mark.parametrize(("status", "category", "prefix"), TABLE)
def test_classify_status__follows_the_spec_table(status: int, category: ErrorCategory, prefix: str) -> None:
    error = classify_status(status, URL)
    assert isinstance(error, ClaimXApiError)
    assert error.category is category and error.http_status == status
    assert str(error) == prefix + URL
    assert error.category.retryable is (category in (ErrorCategory.TRANSIENT, ErrorCategory.AUTH))


@pytest.mark.parametrize(
    ("status", "counted"),
    [(401, False), (403, False), (404, False), (400, False), (429, True), (503, True), (501, True)],
)
def test_counts_for_breaker__only_transient_failures_count(status: int, counted: bool) -> None:
    assert counts_for_breaker(classify_status(status, URL)) is counted


def test_timeout_and_connection_errors_are_transient_and_counted() -> None:
    timeout = timeout_error(30.0, URL)
    assert str(timeout) == f"Timeout after 30s: {URL}" and counts_for_breaker(timeout)
    conn = connection_error(URL, "ConnectionError")
    assert str(conn).startswith("Connection error: ") and conn.category is ErrorCategory.TRANSIENT


def test_classify_status__retry_after_seconds_is_kept_for_429_and_5xx() -> None:
    assert classify_status(429, URL, retry_after="7").retry_after_seconds == 7.0
    assert classify_status(503, URL, retry_after="2").retry_after_seconds == 2.0
    assert classify_status(404, URL, retry_after="2").retry_after_seconds is None


def test_parse_retry_after__http_date_and_garbage() -> None:
    now = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Mon, 05 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-5") is None  # not delta-seconds (RFC 9110): unreadable


def test_classify_status__secrets_in_the_url_are_redacted() -> None:
    error = classify_status(404, URL + "?token=abc123secret&mediaIds=1")
    assert "abc123secret" not in str(error) and "mediaIds=1" in str(error)


def test_circuit_open_error_is_both_an_api_error_and_circuit_open() -> None:
    error = ClaimXCircuitOpenError("Circuit open, retry after 5s", retry_after_seconds=5)
    assert isinstance(error, ClaimXApiError) and isinstance(error, CircuitOpenError)
    assert error.category is ErrorCategory.CIRCUIT_OPEN and not counts_for_breaker(error)
