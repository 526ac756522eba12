"""Classify storage failures (Azure SDK, delta-rs, Redis) into the pipeline's error taxonomy (SPEC §6.2).

Messages built here name the operation and the service's error code only - never the raw
exception text, which can carry URLs with SAS tokens or request headers.
"""

from __future__ import annotations

import redis

from core.errors import AuthError, ErrorCategory, PermanentError, PipelineError, TransientError
from core.http_rules import parse_retry_after
from core.http_rules import status_category as _status_category

#: Azure Storage error codes (``x-ms-error-code``) by category (SPEC §6.2 "Azure codes").
AZURE_CODES: dict[str, ErrorCategory] = {
    **dict.fromkeys(
        ("InternalError", "ServiceUnavailable", "OperationTimedOut", "ServerBusy", "ServerTimeout"),
        ErrorCategory.TRANSIENT,
    ),
    **dict.fromkeys(
        (
            "AuthenticationFailed",
            "InsufficientAccountPermissions",
            "InvalidAuthenticationInfo",
            "AuthorizationFailure",
            "AuthorizationPermissionMismatch",
            "NoAuthenticationInformation",
        ),
        ErrorCategory.AUTH,
    ),
    **dict.fromkeys(
        (
            "AccountIsDisabled",
            "ContainerNotFound",
            "BlobNotFound",
            "FilesystemNotFound",
            "PathNotFound",
            "ResourceNotFound",
            "InvalidResourceName",
            "InvalidUri",
            "ParentNotFound",
            "PathConflict",
            "InvalidFlushPosition",
        ),
        ErrorCategory.PERMANENT,
    ),
}

#: Lower-case markers in delta-rs / object_store messages (SPEC §6.2 generic classification), first match wins.
_DELTA_MARKERS: tuple[tuple[tuple[str, ...], ErrorCategory], ...] = (
    (
        (
            "commitfailederror",
            "failed to commit transaction",
            "transaction conflict",
            "version conflict",
            "concurrent",
            "conflict",
        ),
        ErrorCategory.TRANSIENT,
    ),
    (
        (
            "authenticationfailed",
            "authorizationpermissionmismatch",
            "unauthorized",
            "401",
            "token expired",
            "invalid token",
            "authentication",
        ),
        ErrorCategory.AUTH,
    ),
    (
        (
            "connection refused",
            "connection reset",
            "connection aborted",
            "no route to host",
            "network unreachable",
            "name resolution",
            "dns",
            "socket",
            "broken pipe",
            "timeout",
            "timed out",
            "429",
            "throttl",
            "rate limit",
            "serverbusy",
            "500",
            "502",
            "503",
            "504",
            "error sending request",
        ),
        ErrorCategory.TRANSIENT,
    ),
    (("403", "forbidden", "access denied", "404", "not found", "containernotfound"), ErrorCategory.PERMANENT),
)


_CLASSES: dict[ErrorCategory, type[PipelineError]] = {
    ErrorCategory.TRANSIENT: TransientError,
    ErrorCategory.AUTH: AuthError,
    ErrorCategory.PERMANENT: PermanentError,
}


def make_error(
    category: ErrorCategory,
    message: str,
    *,
    http_status: int | None = None,
    retry_after_seconds: float | None = None,
) -> PipelineError:
    """The taxonomy's class for ``category`` (``TransientError``, ``AuthError``, ``PermanentError``)."""
    cls = _CLASSES.get(category, PipelineError)
    return cls(message, category=category, http_status=http_status, retry_after_seconds=retry_after_seconds)


def status_category(status: int | None) -> ErrorCategory:
    """HTTP status -> category for storage calls: 401 auth, 408/429/5xx transient, other 4xx permanent."""
    return _status_category(status, transient=(408,))  # a request timeout is worth retrying


def classify_azure_error(exc: BaseException, operation: str) -> PipelineError:
    """An azure-core / azure-storage exception -> a classified :class:`PipelineError`."""
    # Imported here: azure-core loads only when an Azure error is classified (never with the
    # local file store).
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, PipelineError):
        return exc
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return make_error(ErrorCategory.TRANSIENT, f"{operation}: connection failed ({type(exc).__name__})")
    if isinstance(exc, HttpResponseError):
        status = exc.status_code
        code = str(getattr(exc.error_code, "value", exc.error_code) or "") or None
        if code in AZURE_CODES:
            category = AZURE_CODES[code]
        elif isinstance(exc, ClientAuthenticationError):
            category = ErrorCategory.AUTH
        else:
            category = status_category(status)
        return make_error(
            category,
            f"{operation}: HTTP {status} {code or ''}".rstrip(),
            http_status=status,
            retry_after_seconds=_retry_after(exc),
        )
    if type(exc).__name__ in ("CredentialUnavailableError", "ClientAuthenticationError"):
        return make_error(ErrorCategory.AUTH, f"{operation}: no credential ({type(exc).__name__})")
    if isinstance(exc, TimeoutError | ConnectionError):
        return make_error(ErrorCategory.TRANSIENT, f"{operation}: {type(exc).__name__}")
    return make_error(ErrorCategory.UNKNOWN, f"{operation}: {type(exc).__name__}")


def classify_delta_error(exc: BaseException, operation: str) -> PipelineError:
    """A delta-rs / object_store / Redis exception -> a classified :class:`PipelineError`.

    delta-rs reports everything as ``DeltaError``/``OSError`` with a message, so the category
    comes from markers in the message; the message itself is not copied (it may hold URLs).
    """
    if isinstance(exc, PipelineError):
        return exc
    if isinstance(exc, redis.RedisError):
        category = (
            ErrorCategory.TRANSIENT
            if isinstance(exc, redis.ConnectionError | redis.TimeoutError)
            else ErrorCategory.UNKNOWN
        )
        return make_error(category, f"{operation}: Redis {type(exc).__name__}")
    if type(exc).__name__ == "CommitFailedError":
        return make_error(ErrorCategory.TRANSIENT, f"{operation}: Delta commit conflict")
    text = str(exc).lower()
    for markers, category in _DELTA_MARKERS:
        hit = next((marker for marker in markers if marker in text), None)
        if hit:
            return make_error(category, f"{operation}: {type(exc).__name__} ({hit})")
    if isinstance(exc, TimeoutError | ConnectionError):
        return make_error(ErrorCategory.TRANSIENT, f"{operation}: {type(exc).__name__}")
    return make_error(ErrorCategory.UNKNOWN, f"{operation}: {type(exc).__name__}")


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    value = getattr(response, "headers", {}).get("Retry-After") if response is not None else None
    return parse_retry_after(value)
