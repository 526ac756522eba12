"""Small pieces of shared state kept in Redis (the broker's Redis, AOF on).

Every worker on every host sees the same state, so nothing here assumes one host.

* :class:`UrlVault` keeps download URLs (which may carry presigned signatures) out of task
  arguments: tasks carry ``media_id``, the vault maps it to the URL.
* :class:`DispatchLedger` remembers dispatched event ids so a redelivered Kafka record does not
  start a second canvas.
* :class:`RowStash` holds rows on their way to a ``write.rows`` task, so task arguments carry a
  reference (rows may hold raw events with presigned URLs, which Flower must never show).
* :class:`Counters` are the pipeline's operational counters (per domain), read by ``pipeline
  summary`` and the run command.
"""

from __future__ import annotations

import json
import uuid

import redis

PREFIX = "pipeline"


class UrlVault:
    """URL by ``{domain}:{media_id}``. Entries live for ``ttl_seconds`` (default 30 days) so a dead
    letter can still be replayed; a completed upload deletes its entry."""

    def __init__(self, client: redis.Redis, ttl_seconds: int = 30 * 24 * 3600) -> None:
        self._r = client
        self._ttl = ttl_seconds

    def _key(self, vault_key: str) -> str:
        return f"{PREFIX}:url:{vault_key}"

    def put(self, vault_key: str, url: str) -> None:
        self._r.set(self._key(vault_key), url, ex=self._ttl)

    def put_many(self, items: dict[str, str]) -> None:
        if not items:
            return
        pipe = self._r.pipeline(transaction=False)
        for key, url in items.items():
            pipe.set(self._key(key), url, ex=self._ttl)
        pipe.execute()

    def get(self, vault_key: str) -> str | None:
        value = self._r.get(self._key(vault_key))
        return value.decode() if isinstance(value, bytes) else value

    def delete(self, vault_key: str) -> None:
        self._r.delete(self._key(vault_key))


class RowStash:
    """Rows by reference: ``put`` returns a key; the write task stages the rows, then deletes it.
    A failed write keeps the entry (30 days) so its dead letter can be replayed."""

    def __init__(self, client: redis.Redis, ttl_seconds: int = 30 * 24 * 3600) -> None:
        self._r = client
        self._ttl = ttl_seconds

    def put(self, rows: list[dict]) -> str:
        return self.put_many([rows])[0]

    def put_many(self, row_lists: list[list[dict]]) -> list[str]:
        """Stash several row lists in one round trip; returns their keys, in order."""
        keys = [f"{PREFIX}:rows:{uuid.uuid4().hex}" for _ in row_lists]
        pipe = self._r.pipeline(transaction=False)
        for key, rows in zip(keys, row_lists, strict=True):
            pipe.set(key, json.dumps(rows, separators=(",", ":"), default=str), ex=self._ttl)
        pipe.execute()
        return keys

    def get(self, key: str) -> list[dict] | None:
        raw = self._r.get(key)
        return None if raw is None else json.loads(raw)

    def delete(self, key: str) -> None:
        self._r.delete(key)


class DispatchLedger:
    """Event ids already dispatched, each remembered for ``ttl_seconds``."""

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self._r = client
        self._ttl = ttl_seconds

    def _key(self, domain: str, event_id: str) -> str:
        return f"{PREFIX}:dispatched:{domain}:{event_id}"

    def seen(self, domain: str, event_id: str) -> bool:
        return bool(self._r.exists(self._key(domain, event_id)))

    def seen_many(self, domain: str, event_ids: list[str]) -> set[str]:
        """The ids of ``event_ids`` already dispatched (one round trip)."""
        pipe = self._r.pipeline(transaction=False)
        for event_id in event_ids:
            pipe.exists(self._key(domain, event_id))
        return {event_id for event_id, hit in zip(event_ids, pipe.execute(), strict=True) if hit}

    def mark(self, domain: str, event_ids: list[str]) -> None:
        """Record ids *after* their canvases were enqueued: a crash in between re-dispatches
        (harmless, every stage is idempotent) instead of losing the event."""
        if not event_ids:
            return
        pipe = self._r.pipeline(transaction=False)
        for event_id in event_ids:
            pipe.set(self._key(domain, event_id), 1, ex=self._ttl)
        pipe.execute()


class Counters:
    """Monotonic counters per domain in one Redis hash each (``HINCRBY``)."""

    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    def _key(self, domain: str) -> str:
        return f"{PREFIX}:counters:{domain}"

    def incr(self, domain: str, name: str, amount: int = 1) -> None:
        if amount:
            self._r.hincrby(self._key(domain), name, amount)

    def incr_many(self, domain: str, values: dict[str, int]) -> None:
        pipe = self._r.pipeline(transaction=False)
        for name, amount in values.items():
            if amount:
                pipe.hincrby(self._key(domain), name, amount)
        pipe.execute()

    def get(self, domain: str) -> dict[str, int]:
        raw = self._r.hgetall(self._key(domain))
        return {k.decode() if isinstance(k, bytes) else k: int(v) for k, v in raw.items()}

    def reset(self, domain: str) -> None:
        self._r.delete(self._key(domain))


class PendingAttachments:
    """Attachment chains in flight, by ``{domain}:{media_id}``, with the time they were (re)started.

    Celery on Redis can lose a message when a worker's main process dies between taking it off the
    queue (BRPOP) and recording it as unacknowledged. An entry here lives from dispatch until the
    chain ends (inventory staged, or dead letter), so ``pipeline.sweep`` can restart a chain that
    has been silent for longer than any legitimate run (``Settings.orphan_after_seconds``).
    """

    INDEX = f"{PREFIX}:pending:index"

    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    @staticmethod
    def _key(member: str) -> str:
        return f"{PREFIX}:pending:{member}"

    def add_many(self, jobs: dict[str, str], *, now: float) -> None:
        """``jobs``: vault key (``domain:media_id``) -> the chain's first payload as JSON."""
        if not jobs:
            return
        pipe = self._r.pipeline(transaction=False)
        for member, payload in jobs.items():
            pipe.set(self._key(member), payload)
        pipe.zadd(self.INDEX, {member: now for member in jobs})
        pipe.execute()

    def done(self, member: str) -> None:
        pipe = self._r.pipeline(transaction=False)
        pipe.delete(self._key(member))
        pipe.zrem(self.INDEX, member)
        pipe.execute()

    def stale(self, older_than: float, limit: int = 1000) -> list[tuple[str, str]]:
        members = [
            m.decode() for m in self._r.zrangebyscore(self.INDEX, "-inf", older_than, start=0, num=limit)
        ]
        if not members:
            return []
        payloads = self._r.mget([self._key(m) for m in members])
        return [(m, p.decode()) for m, p in zip(members, payloads, strict=True) if p is not None]

    def touch(self, member: str, *, now: float) -> None:
        self._r.zadd(self.INDEX, {member: now}, xx=True)

    def count(self) -> int:
        return int(self._r.zcard(self.INDEX))
