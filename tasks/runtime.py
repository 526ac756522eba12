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
from typing import TYPE_CHECKING, Any

import redis
import requests

from core.deadletters import DeadLetterStore
from core.download import new_session
from core.redis_client import redis_client
from core.settings import Settings, get_settings
from core.state import Counters, PendingAttachments, RowStash, UrlVault
from domains import registry
from domains.names import Domain
from writers.staging import Stager

if TYPE_CHECKING:
    from writers.files.base import FileStore


@dataclass
class Runtime:
    settings: Settings

    @cached_property
    def redis(self) -> redis.Redis:
        return redis_client(self.settings, health_check_interval=30)

    @cached_property
    def http(self) -> requests.Session:
        return new_session()

    @cached_property
    def files(self) -> FileStore:
        # Local import keeps start-up fast: the file stores pull in the Azure SDK, which only the
        # upload stage needs.
        from writers.files import file_store_from_settings

        return file_store_from_settings(self.settings)

    @cached_property
    def stager(self) -> Stager:
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
    def _contexts(self) -> dict[str, Any]:
        return {}

    def context(self, domain: Domain | str) -> Any:
        """The domain's own per-process resources (``DomainSpec.context``: an API client, …)."""
        key = str(domain)
        if key not in self._contexts:
            make = registry.spec_of(domain).context
            self._contexts[key] = make(self.settings, self.redis) if make is not None else None
        return self._contexts[key]

    @cached_property
    def hostname(self) -> str:
        return socket.gethostname()


@functools.cache
def get_runtime() -> Runtime:
    return Runtime(get_settings())


def reset_runtime() -> None:
    """Forget the process's resources (called in each forked worker child)."""
    get_runtime.cache_clear()
