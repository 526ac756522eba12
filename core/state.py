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
from typing import Any

import redis

from core import keys, metrics
from core.rows import encode_row

#: How long a URL vault or row-stash entry lives when nothing holds it. While an open dead letter
#: needs an entry for its replay, the entry has no TTL at all (``core.deadletters``: ``holds``);
#: the TTL comes back when the letter is resolved or purged.
REPLAY_STATE_TTL_SECONDS = 30 * 24 * 3600

# KEYS: vault entries. ARGV: TTL, then one URL per key. An entry without a TTL is held by a dead
# letter: it takes the new URL and stays without a TTL (KEEPTTL); any other entry gets the TTL.
_VAULT_PUT_LUA = """
for i, key in ipairs(KEYS) do
  if redis.call('TTL', key) == -1 then
    redis.call('SET', key, ARGV[i + 1], 'KEEPTTL')
  else
    redis.call('SET', key, ARGV[i + 1], 'EX', ARGV[1])
  end
end
return #KEYS
"""


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class UrlVault:
    """URL by ``{domain}:{media_id}``. Entries live for ``ttl_seconds`` (default 30 days); one that
    an open dead letter holds has no TTL until the letter is resolved or purged, and a new ``put``
    keeps it so. A completed attachment deletes its entry."""

    def __init__(self, client: redis.Redis, ttl_seconds: int = REPLAY_STATE_TTL_SECONDS) -> None:
        self._r = client
        self._ttl = ttl_seconds

    def _key(self, vault_key: str) -> str:
        return keys.url(vault_key)

    @staticmethod
    def redis_key(vault_key: str) -> str:
        """The Redis key of the entry ``vault_key`` (what a dead letter holds)."""
        return keys.url(vault_key)

    def put(self, vault_key: str, url: str) -> None:
        self.put_many({vault_key: url})

    def put_many(self, items: dict[str, str]) -> None:
        """Store every URL in one script run (see the class contract on TTLs)."""
        if not items:
            return
        names = [self._key(key) for key in items]
        self._r.eval(_VAULT_PUT_LUA, len(names), *names, self._ttl, *items.values())

    def get(self, vault_key: str) -> str | None:
        return self.decode(self._r.get(self._key(vault_key)))

    @staticmethod
    def decode(raw: bytes | str | None) -> str | None:
        """An entry as read by the caller's own round trip (``GET redis_key(...)``)."""
        return raw.decode() if isinstance(raw, bytes) else raw

    def delete(self, vault_key: str) -> None:
        self._r.delete(self._key(vault_key))


class RowStash:
    """Rows by reference: ``put`` returns a key; the write task stages the rows, then deletes it.
    An entry lives ``ttl_seconds`` (30 days); one held by an open dead letter (a failed write) has
    no TTL until the letter is resolved or purged.

    Entries are Redis lists of rows already in the staged format (``keys.row_list``), so the write
    task stages them with one script in one round trip (``tasks.write``). An entry of the older
    format (one JSON array under ``keys.rows``, e.g. left in Redis across an upgrade) is still read
    and staged the older way."""

    def __init__(self, client: redis.Redis, ttl_seconds: int = REPLAY_STATE_TTL_SECONDS) -> None:
        self._r = client
        self._ttl = ttl_seconds

    def put(self, rows: list[dict[str, Any]]) -> str:
        return self.put_many([rows])[0]

    def put_many(self, row_lists: list[list[dict[str, Any]]]) -> list[str]:
        """Stash several row lists in one round trip; returns their keys, in order."""
        refs = []
        pipe = self._r.pipeline(transaction=False)
        for rows in row_lists:
            ref = uuid.uuid4().hex
            if rows:
                refs.append(keys.row_list(ref))
                pipe.rpush(refs[-1], *(_stash_row(row) for row in rows))
                pipe.expire(refs[-1], self._ttl)
            else:  # a list cannot be empty in Redis
                refs.append(keys.rows(ref))
                pipe.set(refs[-1], "[]", ex=self._ttl)
        pipe.execute()
        return refs

    @staticmethod
    def is_row_list(key: str) -> bool:
        """True for an entry of the list format (``keys.row_list``)."""
        return key.startswith(keys.row_list(""))

    def get(self, key: str) -> list[dict[str, Any]] | None:
        if self.is_row_list(key):
            items = self._r.lrange(key, 0, -1)
            return [json.loads(item) for item in items] if items else None
        return self.decode(self._r.get(key))

    @staticmethod
    def decode(raw: bytes | str | None) -> list[dict[str, Any]] | None:
        """An entry as read by the caller's own round trip (``GET key``)."""
        return None if raw is None else json.loads(raw)

    def delete(self, key: str) -> None:
        self._r.delete(key)


def _stash_row(row: dict[str, Any]) -> str:
    """A row in the staged format; a value JSON cannot carry becomes its ``str`` (as the stash
    always did), so a planner's odd value reaches the flush's coercion instead of failing a batch."""
    try:
        return encode_row(row)
    except TypeError:
        return encode_row(json.loads(json.dumps(row, default=str)))


class DispatchLedger:
    """Event ids already dispatched, each remembered for ``ttl_seconds``."""

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self._r = client
        self._ttl = ttl_seconds

    def _key(self, domain: str, event_id: str) -> str:
        return keys.dispatched(domain, event_id)

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
        self._later: list[tuple[str, dict[str, int]]] = []

    def _key(self, domain: str) -> str:
        return keys.counters(domain)

    def later(self, domain: str, values: dict[str, int]) -> None:
        """Count at the end of the task run, in the tracking's closing round trip
        (``tasks.tracking.record_end`` calls :meth:`drain_into`): one round trip fewer per stage.
        A run that ends without it (tracking could not reach Redis) loses these figures; they are
        statistics, never what decides a work item's fate."""
        self._later.append((domain, dict(values)))

    def drain_into(self, pipe: Any) -> None:
        """Queue every :meth:`later` figure on ``pipe`` (the caller executes it)."""
        pending, self._later = self._later, []
        for domain, values in pending:
            self.incr_many(domain, values, pipe=pipe)

    def discard_later(self) -> None:
        """Forget figures a previous run left behind (a run whose tracking failed)."""
        self._later.clear()

    def incr(self, domain: str, name: str, amount: int = 1) -> None:
        if amount:
            self._r.hincrby(self._key(domain), name, amount)
            metrics.count(domain, name, amount)  # the same figure as a Prometheus counter

    def incr_many(self, domain: str, values: dict[str, int], *, pipe: Any = None) -> None:
        """``pipe``: queue the increments on the caller's pipeline or transaction (it executes)."""
        own = pipe is None
        p = self._r.pipeline(transaction=False) if own else pipe
        for name, amount in values.items():
            if amount:
                p.hincrby(self._key(domain), name, amount)
        if own:
            p.execute()
        for name, amount in values.items():  # the same figures as Prometheus counters
            metrics.count(domain, name, amount)

    def get(self, domain: str) -> dict[str, int]:
        raw = self._r.hgetall(self._key(domain))
        return {k.decode() if isinstance(k, bytes) else k: int(v) for k, v in raw.items()}

    def reset(self, domain: str) -> None:
        self._r.delete(self._key(domain))


class _InFlight:
    """Work in flight, by member, with the time it last moved and the id of the message that
    carries it now (what the reaper looks for: ``tasks.reaper``). Subclasses name the keys."""

    INDEX: str = ""
    TASK: str = ""

    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    @property
    def client(self) -> redis.Redis:
        return self._r

    @staticmethod
    def _key(member: str) -> str:
        raise NotImplementedError

    def add_many(
        self, jobs: dict[str, str], *, now: float, task_ids: dict[str, str] | None = None, pipe: Any = None
    ) -> None:
        """``jobs``: member -> what re-drives it (JSON); ``task_ids``: member -> its message's id."""
        if not jobs:
            return
        own = pipe is None
        p: Any = self._r.pipeline(transaction=False) if own else pipe
        for member, payload in jobs.items():
            p.set(self._key(member), payload)
        p.zadd(self.INDEX, {member: now for member in jobs})
        if task_ids:
            p.hset(self.TASK, mapping=task_ids)
        if own:
            p.execute()

    def done(self, member: str, *, pipe: Any = None) -> None:
        """``pipe``: queue on the caller's pipeline or transaction (it executes)."""
        own = pipe is None
        p = self._r.pipeline(transaction=False) if own else pipe
        p.delete(self._key(member))
        p.zrem(self.INDEX, member)
        p.hdel(self.TASK, member)
        p.hdel(keys.SUSPECTS, member)
        if own:
            p.execute()

    def stale(self, older_than: float, limit: int = 1000) -> list[tuple[str, str]]:
        members = [
            _text(m) for m in self._r.zrangebyscore(self.INDEX, "-inf", older_than, start=0, num=limit)
        ]
        if not members:
            return []
        payloads = self._r.mget([self._key(m) for m in members])
        return [(m, _text(p)) for m, p in zip(members, payloads, strict=True) if p is not None]

    def touch(self, member: str, *, now: float) -> None:
        self._r.zadd(self.INDEX, {member: now}, xx=True)

    def expect(self, member: str, task_id: str, *, now: float, pipe: Any = None) -> None:
        """The work moved on: its message is now ``task_id`` (a chain's next link, a re-drive)."""
        own = pipe is None
        p = self._r.pipeline(transaction=False) if own else pipe
        p.hset(self.TASK, member, task_id)
        p.zadd(self.INDEX, {member: now}, xx=True)
        p.hdel(keys.SUSPECTS, member)
        if own:
            p.execute()

    def task_ids(self, members: list[str]) -> list[str | None]:
        if not members:
            return []
        return [None if t is None else _text(t) for t in self._r.hmget(self.TASK, members)]

    def count(self) -> int:
        return int(self._r.zcard(self.INDEX))


class PendingAttachments(_InFlight):
    """Attachment chains in flight, by ``{domain}:{media_id}``, with the time they last moved.

    Celery on Redis can lose a message when a worker's main process dies between taking it off the
    queue (BRPOP) and recording it as unacknowledged. An entry here lives from dispatch until the
    chain ends (inventory staged, or dead letter), with the id of the chain's current message
    (``keys.PENDING_TASK``), so the reaper (``tasks.reaper``) can restart a chain whose message is
    nowhere: in no queue, unacknowledged nowhere, run by no live worker, not scheduled.
    """

    INDEX = keys.PENDING_INDEX
    TASK = keys.PENDING_TASK

    @staticmethod
    def _key(member: str) -> str:
        return keys.pending(member)


class PendingTasks(_InFlight):
    """Single tasks in flight (``enrich``, ``write.rows``) by task id, each with the signature that
    re-sends it (JSON); the same net as :class:`PendingAttachments` for work outside chains. The
    member is the task id, which a retry keeps, so the expected message id is the member itself."""

    INDEX = keys.INFLIGHT_INDEX
    TASK = keys.PENDING_TASK  # unused: the member is the task id

    @staticmethod
    def _key(member: str) -> str:
        return keys.inflight(member)

    def add_many(
        self, jobs: dict[str, str], *, now: float, task_ids: dict[str, str] | None = None, pipe: Any = None
    ) -> None:
        super().add_many(jobs, now=now, task_ids=None, pipe=pipe)

    def done(self, member: str, *, pipe: Any = None) -> None:
        own = pipe is None
        p = self._r.pipeline(transaction=False) if own else pipe
        p.delete(self._key(member))
        p.zrem(self.INDEX, member)
        p.hdel(keys.SUSPECTS, member)
        if own:
            p.execute()

    def expect(self, member: str, task_id: str, *, now: float, pipe: Any = None) -> None:
        own = pipe is None
        p = self._r.pipeline(transaction=False) if own else pipe
        p.zadd(self.INDEX, {member: now}, xx=True)
        p.hdel(keys.SUSPECTS, member)
        if own:
            p.execute()

    def task_ids(self, members: list[str]) -> list[str | None]:
        return list(members)
