"""The one ``Retry-After`` parser and the one HTTP status -> category rule (core/http_rules.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.errors import ErrorCategory
from core.http_rules import parse_retry_after, status_category

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (b"7", 7.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        ("86400", 86400.0),
        ("1" + "0" * 30, 1e30),  # huge but finite: bounding it is the task layer's business
        ("Mon, 05 Jan 2026 12:00:30 GMT", 30.0),
        ("Mon, 05 Jan 2026 11:00:00 GMT", 0.0),  # a date in the past: go now
        ("-5", None),
        ("inf", None),
        ("nan", None),
        ("1e999", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | bytes | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


A, T, P, U = ErrorCategory.AUTH, ErrorCategory.TRANSIENT, ErrorCategory.PERMANENT, ErrorCategory.UNKNOWN


@pytest.mark.parametrize(
    ("status", "kwargs", "category"),
    [
        (401, {}, A),
        (403, {}, P),
        (403, {"auth": (403,)}, A),  # Kusto: a refused credential
        (302, {"auth": (302,)}, A),  # downloads: a redirect to a login page
        (408, {}, P),
        (408, {"transient": (408,)}, T),  # storage calls
        (429, {}, T),
        (500, {}, T),
        (599, {}, T),
        (404, {}, P),
        (304, {}, U),
        (304, {"otherwise": T}, T),  # ClaimX: an answer it should not give is retried
        (None, {}, U),
    ],
)
def test_status_category(status: int | None, kwargs: dict, category: ErrorCategory) -> None:
    assert status_category(status, **kwargs) is category
