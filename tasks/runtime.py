"""Per-process resources for the stage tasks, built once from the settings.

The composition root of a worker process: one Redis client, one pooled HTTP session, one file
store, the stager, the URL vault, the dead-letter store. Built lazily in the child process (after
the prefork fork), so no connection is shared across processes.
"""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import redis
import requests

from core.deadletters import DeadLetterStore
from core.settings import Settings, get_settings
from core.state import Counters, PendingAttachments, RowStash, UrlVault

if TYPE_CHECKING:
    from writers.files.base import FileStore
    from writers.staging import Stager


@dataclass
class Runtime:
    settings: Settings

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url, health_check_interval=30)

    @cached_property
    def http(self) -> requests.Session:
        from core.download import new_session

        return new_session()

    @cached_property
    def files(self) -> FileStore:
        from writers.files import file_store_from_settings

        return file_store_from_settings(self.settings)

    @cached_property
    def stager(self) -> Stager:
        from writers.staging import Stager

        return Stager(self.redis)

    @cached_property
    def vault(self) -> UrlVault:
        return UrlVault(self.redis)

    @cached_property
    def pending(self) -> PendingAttachments:
        return PendingAttachments(self.redis)

    @cached_property
    def stash(self) -> RowStash:
        return RowStash(self.redis)

    @cached_property
    def dead_letters(self) -> DeadLetterStore:
        return DeadLetterStore(self.redis)

    @cached_property
    def counters(self) -> Counters:
        return Counters(self.redis)

    @cached_property
    def claimx_api(self):  # noqa: ANN201 - domains.claimx.api.ClaimXClient
        from domains.claimx.api import ApiConfig, ClaimXClient
        from domains.claimx.breaker import CircuitBreaker
        from domains.claimx.ratelimit import RateLimiter

        config = ApiConfig.from_settings(self.settings)
        return ClaimXClient(
            config,
            redis=self.redis,
            breaker=CircuitBreaker(self.redis, name="claimx_api"),
            limiter=RateLimiter(self.redis, rate_per_second=self.settings.claimx_api_rate_per_second),
        )

    @cached_property
    def hostname(self) -> str:
        return socket.gethostname()


@functools.cache
def get_runtime() -> Runtime:
    return Runtime(get_settings())


def reset_runtime() -> None:
    """Forget the process's resources (called in each forked worker child)."""
    get_runtime.cache_clear()
