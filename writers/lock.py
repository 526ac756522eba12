"""Keep a Redis lock alive while a long operation runs (one writer per table, SPEC/ARCHITECTURE).

The lock's TTL is short so that a flusher that dies frees its table quickly; a live flusher's
:class:`LockKeeper` thread resets the TTL every ``interval_seconds``. Before committing, the
flusher calls :meth:`LockKeeper.confirm`, which renews once more and refuses to go on if the
lock was lost (another flusher may hold it now).
"""

from __future__ import annotations

import logging
import threading

import redis
from redis.lock import Lock

from core.errors import TransientError

log = logging.getLogger(__name__)


class LockKeeper:
    """Renews ``lock`` in a daemon thread until :meth:`stop`; records whether it was ever lost."""

    def __init__(self, lock: Lock, interval_seconds: float) -> None:
        self._lock = lock
        self._interval = max(0.05, interval_seconds)
        self._stopped = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._run, name="flush-lock-keeper", daemon=True)
        self._thread.start()

    def confirm(self, operation: str) -> None:
        """Renew now; raise :class:`TransientError` unless the lock is provably still ours."""
        try:
            if not self.lost:
                self._lock.reacquire()
                return
        except redis.RedisError:  # LockError included: lost, or cannot tell
            self.lost = True
        raise TransientError(
            f"{operation}: flush lock not confirmed before commit; batch left for the next flush"
        )

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            if not self._renew():
                return

    def _renew(self) -> bool:
        try:
            self._lock.reacquire()
        except redis.exceptions.LockError:
            self.lost = True
            log.warning("flush lock lost", extra={"lock": self._lock.name})
            return False
        except redis.RedisError as exc:  # Redis unreachable: the TTL may still cover us; retry next tick
            log.warning(
                "flush lock renewal failed", extra={"lock": self._lock.name, "error": type(exc).__name__}
            )
            return True
        return True
