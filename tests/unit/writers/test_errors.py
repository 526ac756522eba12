"""Storage failures map onto the error taxonomy (writers.errors)."""

from __future__ import annotations

import pytest
import redis

from core.errors import AuthError, ErrorCategory, PermanentError, PipelineError, TransientError
from writers.errors import classify_delta_error, make_error, status_category


@pytest.mark.parametrize(
    ("status", "category"),
    [
        (401, ErrorCategory.AUTH),
        (403, ErrorCategory.PERMANENT),
        (404, ErrorCategory.PERMANENT),
        (408, ErrorCategory.TRANSIENT),
        (429, ErrorCategory.TRANSIENT),
        (500, ErrorCategory.TRANSIENT),
        (503, ErrorCategory.TRANSIENT),
        (None, ErrorCategory.UNKNOWN),
        (304, ErrorCategory.UNKNOWN),
    ],
)
def test_status_category(status: int | None, category: ErrorCategory) -> None:
    assert status_category(status) is category


@pytest.mark.parametrize(
    ("category", "cls"),
    [
        (ErrorCategory.TRANSIENT, TransientError),
        (ErrorCategory.AUTH, AuthError),
        (ErrorCategory.PERMANENT, PermanentError),
        (ErrorCategory.UNKNOWN, PipelineError),
    ],
)
def test_make_error__uses_the_taxonomy_class(category: ErrorCategory, cls: type) -> None:
    error = make_error(category, "x")
    assert type(error) is cls and error.category is category


class CommitFailedError(Exception):
    """Same name as deltalake's conflict error; classification is by type name and message."""


@pytest.mark.parametrize(
    ("exc", "category"),
    [
        (CommitFailedError("Transaction failed: version already exists"), ErrorCategory.TRANSIENT),
        (
            OSError(
                "Generic MicrosoftAzure error: Error performing GET http://h/x?sig=SECRET in 3s: "
                "error sending request"
            ),
            ErrorCategory.TRANSIENT,
        ),
        (
            OSError("Server returned non-2xx status code: 403 Forbidden: AuthenticationFailed"),
            ErrorCategory.AUTH,
        ),
        (
            OSError("Server returned non-2xx status code: 404 Not Found: ContainerNotFound"),
            ErrorCategory.PERMANENT,
        ),
        (redis.ConnectionError("Error 111 connecting"), ErrorCategory.TRANSIENT),
        (ValueError("something else"), ErrorCategory.UNKNOWN),
    ],
)
def test_classify_delta_error__by_type_and_markers_without_copying_the_message(
    exc: Exception, category: ErrorCategory
) -> None:
    error = classify_delta_error(exc, "flush xact_events")
    assert error.category is category
    assert "SECRET" not in error.message and error.message.startswith("flush xact_events")
