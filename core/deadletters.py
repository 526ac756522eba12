"""Dead letters: a named, durable, replayable path (STYLE §6, DECISIONS "Errors").

A dead letter keeps the original task (its JSON arguments: ids and references, never secrets),
the stage it failed in, the error category and the redacted message, the attempt count and
timestamps. It lives in Redis (AOF on) as one hash per letter plus a sorted-set index per
domain, so it survives a restart of any component and is visible from every host.

Replay is done by the caller (the CLI) through ``tasks.canvas.resume``: this module only stores.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import redis

from core.errors import ErrorCategory, truncate
from core.security.redact import sanitize_error

_PREFIX = "pipeline:dlq"


class LetterStatus(StrEnum):
    OPEN = "open"
    REPLAYED = "replayed"
    RESOLVED = "resolved"


@dataclass
class DeadLetter:
    domain: str
    stage: str
    task_name: str
    payload: dict[str, Any]
    category: str
    error: str
    attempts: int
    key: str
    """The work item's idempotency key (media id, event id)."""
    first_failed_at: str
    failed_at: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: str = LetterStatus.OPEN.value
    replays: int = 0

    def to_redis(self) -> dict[str, str]:
        data = asdict(self)
        data["payload"] = json.dumps(self.payload, sort_keys=True)
        return {k: str(v) for k, v in data.items()}

    @classmethod
    def from_redis(cls, raw: dict[bytes, bytes]) -> DeadLetter:
        data = {k.decode(): v.decode() for k, v in raw.items()}
        data["payload"] = json.loads(data["payload"])
        data["attempts"] = int(data["attempts"])
        data["replays"] = int(data.get("replays", 0))
        return cls(**data)


class DeadLetterStore:
    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    @staticmethod
    def _key(letter_id: str) -> str:
        return f"{_PREFIX}:letter:{letter_id}"

    @staticmethod
    def _index(domain: str) -> str:
        return f"{_PREFIX}:index:{domain}"

    def add(
        self,
        *,
        domain: str,
        stage: str,
        task_name: str,
        payload: dict[str, Any],
        category: ErrorCategory | str,
        error: str,
        attempts: int,
        key: str,
        first_failed_at: datetime | None = None,
    ) -> DeadLetter:
        now = datetime.now(UTC)
        letter = DeadLetter(
            domain=domain,
            stage=stage,
            task_name=task_name,
            payload=payload,
            category=ErrorCategory(category).value,
            error=truncate(sanitize_error(error)),
            attempts=attempts,
            key=key,
            first_failed_at=(first_failed_at or now).isoformat(),
            failed_at=now.isoformat(),
        )
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(self._key(letter.id), mapping=letter.to_redis())
        pipe.zadd(self._index(domain), {letter.id: now.timestamp()})
        pipe.execute()
        return letter

    def get(self, letter_id: str) -> DeadLetter | None:
        raw = self._r.hgetall(self._key(letter_id))
        return DeadLetter.from_redis(raw) if raw else None

    def list(
        self, domain: str | None = None, *, status: str | None = LetterStatus.OPEN.value, limit: int = 1000
    ) -> list[DeadLetter]:
        domains = [domain] if domain else ["xact", "claimx"]
        letters: list[DeadLetter] = []
        for d in domains:
            for letter_id in self._r.zrange(self._index(d), 0, -1):
                letter = self.get(letter_id.decode())
                if letter and (status is None or letter.status == status):
                    letters.append(letter)
                if len(letters) >= limit:
                    return letters
        return letters

    def count(self, domain: str, *, status: str | None = LetterStatus.OPEN.value) -> int:
        return len(self.list(domain, status=status, limit=10**9))

    def set_status(self, letter_id: str, status: LetterStatus) -> None:
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(self._key(letter_id), "status", status.value)
        if status is LetterStatus.REPLAYED:
            pipe.hincrby(self._key(letter_id), "replays", 1)
        pipe.execute()

    def purge(self, domain: str, *, status: str | None = None) -> int:
        """Delete letters of ``domain`` (only those with ``status`` when given)."""
        removed = 0
        for letter in self.list(domain, status=status, limit=10**9):
            pipe = self._r.pipeline(transaction=True)
            pipe.delete(self._key(letter.id))
            pipe.zrem(self._index(domain), letter.id)
            pipe.execute()
            removed += 1
        return removed
