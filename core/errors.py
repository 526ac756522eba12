"""The error taxonomy. A category says what happens next (SPEC §6.1, DECISIONS).

* ``transient``, ``auth``, ``unknown``: retried by Celery with backoff, then dead-lettered.
* ``circuit_open``: re-queued after the breaker's remaining open time, not counted as a retry.
* ``permanent``: never retried; dead-lettered at once.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCategory(StrEnum):
    TRANSIENT = "transient"
    AUTH = "auth"
    PERMANENT = "permanent"
    CIRCUIT_OPEN = "circuit_open"
    UNKNOWN = "unknown"

    @property
    def retryable(self) -> bool:
        return self in (ErrorCategory.TRANSIENT, ErrorCategory.AUTH, ErrorCategory.UNKNOWN)


class PipelineError(Exception):
    """Base of every classified error. ``message`` must already be free of secrets."""

    category: ErrorCategory = ErrorCategory.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        category: ErrorCategory | None = None,
        http_status: int | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if category is not None:
            self.category = category
        self.http_status = http_status
        self.retry_after_seconds = retry_after_seconds

    def __str__(self) -> str:
        return self.message


class TransientError(PipelineError):
    category = ErrorCategory.TRANSIENT


class AuthError(PipelineError):
    category = ErrorCategory.AUTH


class PermanentError(PipelineError):
    category = ErrorCategory.PERMANENT


class CircuitOpenError(PipelineError):
    category = ErrorCategory.CIRCUIT_OPEN


class ConfigError(Exception):
    """Raised at start-up when the settings are inconsistent; the message says what to change."""


def truncate(text: str, limit: int = 500) -> str:
    """SPEC §3.7: error strings longer than ``limit`` become ``limit - 3`` chars + ``...``."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
