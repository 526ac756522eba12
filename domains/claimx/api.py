"""The ClaimX REST client (SPEC §4.4, §5).

Every call goes: shared circuit breaker (open ⇒ :class:`ClaimXCircuitOpenError` before any request)
→ shared rate limiter (a Redis token bucket) → one HTTP request on this process's pooled session →
classification (:mod:`domains.claimx.api_errors`) → breaker outcome. There are no retries in here;
retries happen at the queue level (SPEC §5 "In-client retries: none").

Security: the token is a :class:`~pydantic.SecretStr`, sent only as ``Authorization: Basic <token>``
per request and never stored on the session, logged or put in an exception message. Redirects are
not followed (a redirect could carry the header elsewhere): a 3xx is an ``HTTP error``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import redis
import requests
from pydantic import SecretStr
from requests.adapters import HTTPAdapter

from core.errors import CircuitOpenError, ConfigError, PipelineError
from core.metrics import observe_api
from core.security.sessions import isolated_session
from domains.claimx.api_errors import (
    ClaimXApiError,
    ClaimXCircuitOpenError,
    classify_status,
    connection_error,
    counts_for_breaker,
    int_id,
    invalid_body_error,
    timeout_error,
)
from domains.claimx.breaker import CircuitBreaker
from domains.claimx.ratelimit import RateLimiter

if TYPE_CHECKING:
    from core.settings import Settings

__all__ = ["ApiConfig", "ClaimXApiError", "ClaimXCircuitOpenError", "ClaimXClient"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiConfig:
    """Client options. ``token`` is the already-base64 ``user:password`` value (SPEC §5)."""

    base_url: str
    token: SecretStr
    timeout_seconds: float = 30.0
    connect_timeout_seconds: float = 5.0
    rate_per_second: float = 20.0
    sender_username: str = "user@example.com"
    burst: int | None = None
    """Token-bucket size; ``None`` ⇒ one second's worth of requests."""
    max_concurrent: int = 20
    """Connection-pool size per process; callers beyond it wait for a connection."""
    rate_limit_max_wait_seconds: float = 10.0
    proxy_url: str | None = None
    """The only proxy used (``CLAIMX_API_PROXY_URL``); proxy/netrc/CA environment variables are ignored."""

    def __post_init__(self) -> None:
        if not self.token.get_secret_value().strip():
            raise ConfigError("CLAIMX_API_TOKEN is empty: the ClaimX client refuses to start without it")
        if not self.base_url.strip():
            raise ConfigError("CLAIMX_API_URL is empty")

    @classmethod
    def from_settings(cls, s: Settings) -> ApiConfig:
        if s.claimx_api_token is None:
            raise ConfigError("CLAIMX_API_TOKEN is not set: the ClaimX client refuses to start without it")
        return cls(
            base_url=s.claimx_api_url,
            token=s.claimx_api_token,
            timeout_seconds=s.claimx_api_timeout_seconds,
            connect_timeout_seconds=s.claimx_api_connect_timeout_seconds,
            rate_per_second=s.claimx_api_rate_per_second,
            sender_username=s.claimx_sender_username,
            proxy_url=s.claimx_api_proxy_url,
        )


class ClaimXClient:
    """Implements :class:`domains.claimx.ports.ApiPort` over HTTP.

    ``breaker``/``limiter`` default to the shared ``claimx_api`` instances in ``redis``.
    ``requests_made`` counts HTTP requests actually sent by this instance (API-economy measurement).
    """

    def __init__(
        self,
        config: ApiConfig,
        *,
        redis: redis.Redis,
        breaker: CircuitBreaker | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.config = config
        self._breaker = breaker or CircuitBreaker(redis, "claimx_api")
        self._limiter = limiter or RateLimiter(
            redis,
            "claimx_api",
            rate_per_second=config.rate_per_second,
            burst=config.burst,
            max_wait_seconds=config.rate_limit_max_wait_seconds,
        )
        self._base = config.base_url.rstrip("/")
        self._lock = threading.Lock()
        self._session: requests.Session | None = None
        self._session_pid: int | None = None
        self.requests_made = 0

    # --- ApiPort -------------------------------------------------------------------------------
    def get_project(self, project_id: str | int) -> dict[str, Any]:
        pid = _int_id("project id", project_id)
        return _as_object(self._request("GET", f"export/project/{pid}"))

    def get_project_media(
        self, project_id: str | int, media_ids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        pid = _int_id("project id", project_id)
        query = None
        if media_ids:
            query = {"mediaIds": ",".join(str(_int_id("media id", m)) for m in media_ids)}
        return _as_list(self._request("GET", f"export/project/{pid}/media", query=query), "media")

    def get_custom_task(self, assignment_id: str | int) -> dict[str, Any]:
        aid = _int_id("task assignment id", assignment_id)
        return _as_object(self._request("GET", f"customTasks/assignment/{aid}", query={"full": "true"}))

    def get_video_collaboration(
        self, project_id: str | int, *, start_date: str | None = None, end_date: str | None = None
    ) -> dict[str, Any] | list[Any]:
        body = self._report_body("VIDEO_COLLABORATION", project_id)
        if start_date:
            body["startDate"] = start_date
        if end_date:
            body["endDate"] = end_date
        result = self._request("POST", "data", json_body=body)
        return result if isinstance(result, (dict, list)) else {}

    def get_project_contacts(self, project_id: str | int) -> list[dict[str, Any]]:
        pid = _int_id("project id", project_id)
        return _as_list(self._request("GET", f"export/project/{pid}/contacts"), "contacts")

    def get_project_conversations(self, project_id: str | int) -> list[dict[str, Any]]:
        pid = _int_id("project id", project_id)
        return _as_list(self._request("GET", f"export/project/{pid}/conversations"), "conversations")

    def get_project_tasks(self, project_id: str | int) -> list[dict[str, Any]]:
        result = self._request(
            "POST", "data", json_body=self._report_body("CUSTOM_TASK_HIGH_LEVEL", project_id)
        )
        data = result.get("data") if isinstance(result, dict) else None
        return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []

    # --- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
            self._session = None

    def __enter__(self) -> ClaimXClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------------
    def _report_body(self, report_type: str, project_id: str | int) -> dict[str, Any]:
        return {
            "reportType": report_type,
            "projectId": _int_id("project id", project_id),
            "senderUsername": self.config.sender_username,
        }

    def _url(self, endpoint: str, query: dict[str, str] | None) -> str:
        url = f"{self._base}/{endpoint.lstrip('/')}"
        if query:
            # Commas stay literal (``mediaIds=1,2``) as the ClaimX API documents them.
            url += "?" + "&".join(f"{quote(k)}={quote(v, safe=',')}" for k, v in query.items())
        return url

    def _request(
        self,
        method: str,
        endpoint: str,
        *,
        query: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> Any:
        url = self._url(endpoint, query)
        try:
            self._breaker.before_call()
        except CircuitOpenError as exc:
            raise ClaimXCircuitOpenError(exc.message, retry_after_seconds=exc.retry_after_seconds) from None
        try:
            self._limiter.acquire()
        except PipelineError:
            self._breaker.record_ignored()  # our own back-pressure, not an API failure
            raise
        started = time.perf_counter()
        try:
            body = self._send(method, url, json_body)
        except PipelineError as exc:
            observe_api(endpoint, exc.http_status, time.perf_counter() - started)
            if counts_for_breaker(exc):
                self._breaker.record_failure()
            else:
                self._breaker.record_ignored()
            log.info(
                "claimx api call failed",
                extra={"method": method, "endpoint": endpoint, "error_category": str(exc.category)},
            )
            raise
        observe_api(endpoint, 200, time.perf_counter() - started)
        self._breaker.record_success()
        return body

    def _send(self, method: str, url: str, json_body: dict[str, Any] | None) -> Any:
        headers = {
            "Authorization": f"Basic {self.config.token.get_secret_value()}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        with self._lock:
            self.requests_made += 1
        try:
            response = self._get_session().request(
                method,
                url,
                json=json_body,
                headers=headers,
                allow_redirects=False,
                timeout=(self.config.connect_timeout_seconds, self.config.timeout_seconds),
            )
        except requests.Timeout:
            raise timeout_error(self.config.timeout_seconds, url) from None
        except requests.RequestException as exc:
            raise connection_error(url, exc.__class__.__name__) from None
        with response:
            if response.status_code != 200:
                raise classify_status(
                    response.status_code, url, retry_after=response.headers.get("Retry-After")
                )
            try:
                return response.json()
            except ValueError:
                raise invalid_body_error(url) from None

    def _get_session(self) -> requests.Session:
        """This process's pooled session; a forked child builds its own (sockets are not shared)."""
        with self._lock:
            if self._session is None or self._session_pid != os.getpid():
                session = isolated_session(proxy_url=self.config.proxy_url)
                adapter = HTTPAdapter(
                    pool_connections=1, pool_maxsize=self.config.max_concurrent, pool_block=True
                )
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                self._session, self._session_pid = session, os.getpid()
            return self._session


def _int_id(what: str, value: str | int) -> int:
    return int_id(what, value)


def _as_object(body: Any) -> dict[str, Any]:
    return body if isinstance(body, dict) else {"data": body}


def _as_list(body: Any, key: str) -> list[dict[str, Any]]:
    """SPEC §4.4: a list as is; an object's ``data``, else its ``key``, else ``[object]``."""
    if isinstance(body, dict):
        if "data" in body:
            body = body["data"]
        elif key in body:
            body = body[key]
        else:
            body = [body]
    if isinstance(body, dict):
        body = [body]
    if not isinstance(body, list):
        return []
    return [item for item in body if isinstance(item, dict)]
