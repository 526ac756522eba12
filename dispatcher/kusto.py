"""Eventhouse (Kusto) access for the poller: KQL literals, Kusto time values, the query client.

Contracts:

* Kusto times are carried as **ticks**: integer 100 ns units since 1970-01-01 UTC, Kusto's own
  precision. Python ``datetime`` keeps only microseconds, and a checkpoint rounded to microseconds
  would make the poller re-read (and, for a large ingestion batch, loop on) rows it already published.
  :func:`format_time` always yields ``YYYY-MM-DDTHH:MM:SS.fffffffZ``; :func:`parse_time` accepts what
  Kusto returns (0-7 fraction digits, ``Z``) and any ISO-8601 text with an offset.
* :func:`kql_string` and :func:`kql_datetime` are the only ways a value reaches query text:
  strings are single-quoted with backslash escapes, datetimes are re-formatted from ticks.
* :meth:`EventhouseClient.query` returns the primary result as dicts of the JSON values Kusto sent
  (datetimes stay full-precision ISO strings, ``dynamic`` stays an object) or raises a classified
  :class:`~core.errors.PipelineError` after at most ``max_retries`` bounded, backed-off retries.
  A response that reports query errors (partial results) is a failure, never a short page.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.kusto.data import ClientRequestProperties, KustoClient, KustoConnectionStringBuilder
from azure.kusto.data.exceptions import (
    KustoApiError,
    KustoAuthenticationError,
    KustoMultiApiError,
    KustoNetworkError,
    KustoServiceError,
    KustoThrottlingError,
)

from core.errors import AuthError, ErrorCategory, PermanentError, PipelineError, TransientError
from core.http_rules import parse_retry_after
from core.security.redact import sanitize_error
from writers.storage import default_credential

log = logging.getLogger("pipeline.poller.kusto")

TICKS_PER_SECOND = 10_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_KUSTO_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7})\d*)?Z?$")
#: Kusto's own resource id: the audience of Eventhouse tokens (SPEC §8.2 token-file key).
KUSTO_RESOURCE = "https://kusto.kusto.windows.net"
#: Error codes / texts that mean "try again later" (throttling, busy, transient service faults).
_TRANSIENT_MARKERS = (
    "40501",
    "limitsexceeded",
    "toomanyrequests",
    "throttl",
    "serviceunavailable",
    "servicebusy",
    "timeout",
    "timed out",
)


# --- time values --------------------------------------------------------------------------------
def parse_time(text: str) -> int:
    """Ticks of an ISO-8601 time; ``ValueError`` for anything else (never reaches a query)."""
    match = _KUSTO_TIME.match(text.strip())
    if match is None:
        return ticks_of(datetime.fromisoformat(text.strip()))
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    days = date(year, month, day).toordinal() - _EPOCH_ORDINAL
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"not a time: {text!r}")
    fraction = int((match.group(7) or "").ljust(7, "0"))
    return ((days * 86400 + hour * 3600 + minute * 60 + second) * TICKS_PER_SECOND) + fraction


def ticks_of(moment: datetime) -> int:
    """Ticks of a datetime; naive values are taken as UTC."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * TICKS_PER_SECOND + delta.microseconds * 10


def format_time(ticks: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.fffffffZ`` (always 7 fraction digits, UTC)."""
    seconds, fraction = divmod(ticks, TICKS_PER_SECOND)
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:07d}Z"


# --- KQL literals -------------------------------------------------------------------------------
def kql_string(value: str) -> str:
    """A single-quoted KQL string literal: backslash, quote and line breaks are escaped."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f"'{escaped}'"


def kql_datetime(ticks: int) -> str:
    return f"datetime({format_time(ticks)})"


def kql_table(name: str) -> str:
    """A table reference in bracket form, safe for any configured name."""
    return f"[{kql_string(name)}]"


# --- errors -------------------------------------------------------------------------------------
def classify(exc: BaseException) -> PipelineError:
    """Map an SDK/transport failure to the taxonomy (429/40501/5xx/network: transient; 401/403: auth;
    other 4xx and errors Kusto marks permanent: permanent; anything else: unknown)."""
    if isinstance(exc, PipelineError):
        return exc
    text = sanitize_error(_describe(exc))
    if isinstance(exc, KustoThrottlingError):
        return TransientError(
            f"Eventhouse throttled the query: {text}", http_status=429, retry_after_seconds=_retry_after(exc)
        )
    if isinstance(exc, KustoAuthenticationError):
        return AuthError(f"no Eventhouse token ({type(exc.exception).__name__})")
    if isinstance(exc, KustoNetworkError):
        return TransientError(f"Eventhouse unreachable: {text}")
    status = _status(exc)
    lowered = text.lower()
    if status in (401, 403):
        return AuthError(f"Eventhouse refused the credentials (HTTP {status})", http_status=status)
    if status == 429 or any(marker in lowered for marker in _TRANSIENT_MARKERS):
        return TransientError(
            f"Eventhouse busy: {text}", http_status=status, retry_after_seconds=_retry_after(exc)
        )
    if _marked_permanent(exc) or (status is not None and 400 <= status < 500):
        return PermanentError(f"Eventhouse rejected the query: {text}", http_status=status)
    if (status is not None and status >= 500) or isinstance(exc, KustoMultiApiError):
        return TransientError(f"Eventhouse query failed: {text}", http_status=status)
    return PipelineError(
        f"Eventhouse query failed: {text}", category=ErrorCategory.UNKNOWN, http_status=status
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KustoApiError):
        error = exc.get_api_error()
        return f"{error.code}: {error.description or error.message}"
    if isinstance(exc, KustoMultiApiError):
        return "; ".join(f"{e.code}: {e.description or e.message}" for e in exc.get_api_errors()) or str(exc)
    if isinstance(exc, KustoServiceError):
        return f"{type(exc).__name__}: {exc.message_text}"
    if isinstance(exc, KustoThrottlingError) and exc.args:
        return f"{type(exc).__name__}: {exc.args[0]}"
    return f"{type(exc).__name__}: {exc}"


def _response(exc: BaseException) -> Any:
    """The HTTP response an SDK error carries (an attribute, or - for throttling - an argument)."""
    response = getattr(exc, "http_response", None)
    if response is None:
        response = next((arg for arg in exc.args if hasattr(arg, "status_code")), None)
    return response


def _status(exc: BaseException) -> int | None:
    response = _response(exc)
    return getattr(response, "status_code", None) if response is not None else None


def _retry_after(exc: BaseException) -> float | None:
    response = _response(exc)
    return parse_retry_after(response.headers.get("Retry-After")) if response is not None else None


def _marked_permanent(exc: BaseException) -> bool:
    if isinstance(exc, KustoApiError):
        return bool(exc.get_api_error().permanent)
    if isinstance(exc, KustoMultiApiError):
        errors = exc.get_api_errors()
        return bool(errors) and all(e.permanent for e in errors)
    return False


# --- client -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """Retries after the first attempt; delay ``base * 2**n`` (with jitter) capped at ``max``."""

    max_retries: int = 3
    base_delay_seconds: float = 1.0
    max_delay_seconds: float = 30.0

    def delay(self, retry: int, retry_after_seconds: float | None = None) -> float:
        backoff = min(self.max_delay_seconds, self.base_delay_seconds * 2**retry)
        backoff *= random.uniform(0.5, 1.0)  # jitter, not crypto
        if retry_after_seconds is not None:
            backoff = max(backoff, min(retry_after_seconds, self.max_delay_seconds))
        return backoff


def token_file_provider(path: Path) -> Callable[[], str]:
    """Token callback reading ``path`` on every call (an external refresher rewrites it):
    a raw token, or SPEC §8.2 JSON keyed by resource URL (the Kusto resource, else the only entry)."""

    def _token() -> str:
        text = path.read_text().strip()
        if not text.startswith("{"):
            return text
        tokens = json.loads(text)
        for key, value in tokens.items():
            if key.rstrip("/") == KUSTO_RESOURCE:
                return str(value)
        if len(tokens) == 1:
            return str(next(iter(tokens.values())))
        raise AuthError(f"token file has no entry for {KUSTO_RESOURCE}")

    return _token


class EventhouseClient:
    """Runs KQL against one Eventhouse database. Not thread-safe; one per poller."""

    def __init__(
        self,
        cluster_url: str,
        database: str,
        *,
        token_provider: Callable[[], str] | None = None,
        credential: Any | None = None,
        timeout_seconds: float = 120.0,
        retry: RetryPolicy | None = None,
        wait: Callable[[float], object] = time.sleep,
    ) -> None:
        self.cluster_url = cluster_url.rstrip("/")
        self.database = database
        self._token_provider = token_provider
        self._credential = credential
        self._timeout = timedelta(seconds=timeout_seconds)
        self.retry = retry or RetryPolicy()
        self._wait = wait
        self._client: KustoClient | None = None

    def query(self, kql: str) -> list[dict[str, Any]]:
        """Primary-result rows of ``kql``; raises the classified error of the last attempt."""
        retry = 0
        while True:
            try:
                return self._query_once(kql)
            except Exception as exc:  # noqa: BLE001 - every SDK/transport failure is classified below
                error = classify(exc)
                if error.category is ErrorCategory.AUTH:
                    self.close()  # a fresh client re-acquires its token
                if not error.category.retryable or retry >= self.retry.max_retries:
                    raise error from None
                delay = self.retry.delay(retry, error.retry_after_seconds)
                log.warning(
                    "eventhouse query failed (%s), retry %d/%d in %.1fs: %s",
                    error.category.value,
                    retry + 1,
                    self.retry.max_retries,
                    delay,
                    error.message,
                )
                retry += 1
                if self._wait(delay):  # interrupted (stop requested)
                    raise error from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _query_once(self, kql: str) -> list[dict[str, Any]]:
        properties = ClientRequestProperties()
        properties.set_option(ClientRequestProperties.request_timeout_option_name, self._timeout)
        response = self._connection().execute_query(self.database, kql, properties)
        if response.errors_count:
            raise TransientError(
                "Eventhouse returned partial results: " + sanitize_error("; ".join(response.get_exceptions()))
            )
        primary = response.primary_results
        if not primary:
            raise TransientError("Eventhouse response has no primary result")
        names = [column["ColumnName"] for column in primary[0].raw_columns]
        return [dict(zip(names, row, strict=True)) for row in primary[0].raw_rows]

    def _connection(self) -> KustoClient:
        if self._client is None:
            if self._token_provider is not None:
                kcsb = KustoConnectionStringBuilder.with_token_provider(
                    self.cluster_url, self._token_provider
                )
            else:
                kcsb = KustoConnectionStringBuilder.with_azure_token_credential(
                    self.cluster_url, credential=self._credential or default_credential()
                )
            self._client = KustoClient(kcsb)
        return self._client


__all__ = [
    "EventhouseClient",
    "RetryPolicy",
    "classify",
    "format_time",
    "kql_datetime",
    "kql_string",
    "kql_table",
    "parse_time",
    "ticks_of",
    "token_file_provider",
]
