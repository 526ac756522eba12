"""The project cache shared by all workers (DECISIONS "claimx": project cache).

A project response body fetched within ``ttl_seconds`` is served from Redis, so media, task, video
and policyholder events do not re-fetch it. ``PROJECT_CREATED`` / ``PROJECT_MFN_ADDED`` always fetch
and :meth:`ProjectCache.put` the fresh body.

The cache is an optimisation, never a source of truth: when Redis cannot be read or written, or a
stored value is not valid JSON, the cache behaves as a miss (logged) and the caller fetches.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

from core import keys
from core.metrics import observe_project_cache

log = logging.getLogger(__name__)


class ProjectCache:
    """``get``/``put`` of ClaimX project bodies keyed by project id. Disabled ⇒ always a miss."""

    def __init__(
        self,
        redis_client: redis.Redis,
        ttl_seconds: int = 3600,
        enabled: bool = True,
        *,
        key_prefix: str = keys.project_cache_prefix("claimx"),
    ) -> None:
        self._redis = redis_client
        self.ttl_seconds = int(ttl_seconds)
        self.enabled = enabled and self.ttl_seconds > 0
        self._prefix = key_prefix

    def get(self, project_id: str) -> dict[str, Any] | None:
        """The cached body for ``project_id``, or ``None`` (miss, disabled, Redis trouble)."""
        if not self.enabled:
            return None
        try:
            raw = self._redis.get(self._key(project_id))
        except redis.RedisError as exc:
            log.warning(
                "project cache read failed; fetching instead",
                extra={"project_id": project_id, "error": exc.__class__.__name__},
            )
            return None
        observe_project_cache(hit=raw is not None)
        if raw is None:
            return None
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            log.warning("project cache entry unreadable; fetching instead", extra={"project_id": project_id})
            return None
        return body if isinstance(body, dict) else None

    def put(self, project_id: str, body: dict[str, Any]) -> None:
        """Store ``body`` for ``ttl_seconds`` (overwrites and restarts the TTL)."""
        if not self.enabled:
            return
        try:
            self._redis.set(
                self._key(project_id), json.dumps(body, separators=(",", ":")), ex=self.ttl_seconds
            )
        except redis.RedisError as exc:
            log.warning(
                "project cache write failed",
                extra={"project_id": project_id, "error": exc.__class__.__name__},
            )

    def invalidate(self, project_id: str) -> None:
        if self.enabled:
            try:
                self._redis.delete(self._key(project_id))
            except redis.RedisError as exc:
                log.warning(
                    "project cache invalidate failed",
                    extra={"project_id": project_id, "error": exc.__class__.__name__},
                )

    def _key(self, project_id: str) -> str:
        return f"{self._prefix}:{str(project_id).strip()}"
