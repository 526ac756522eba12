"""Dead letters: a named, durable, replayable path (STYLE §6, DECISIONS "Errors").

A dead letter keeps the original task (its JSON arguments: ids and references, never secrets),
the stage it failed in, the error category and the redacted message, the attempt count and
timestamps. It lives in Redis (AOF on) as one hash per letter plus a sorted-set index per
domain, so it survives a restart of any component and is visible from every host.

Contracts:

* **One letter per work item.** A letter's id is derived from ``(domain, stage, key)``, where
  ``key`` names the work item (media id, event id, stash reference). Writing a letter for a work
  item that already has one updates that letter (latest payload, error, attempts, ``failed_at``;
  ``failures`` counts the writes; status back to ``open``) instead of adding another, so a
  redelivered task, a re-dispatched batch or a second event announcing the same media id never
  multiply letters. ``first_failed_at`` and ``replays`` are kept.
* **A letter keeps alive what its replay needs.** ``holds`` lists the Redis keys a replay reads
  (the URL vault entry of an attachment, the row-stash entry of ``write.rows``). In the same
  atomic script that writes the letter, each held key loses its TTL (``PERSIST``) and the letter
  joins the key's holder set. Resolving or purging a letter releases its holds: a key no other
  letter holds gets its TTL back (:data:`core.state.REPLAY_STATE_TTL_SECONDS`). A replayed letter
  keeps its holds: the replayed work deletes the key when it succeeds, and a replay that fails
  again reopens the same letter.

Replay is done by the caller (the CLI) through ``tasks.canvas.resume``: this module only stores.
"""

from __future__ import annotations

import builtins
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import redis

from core import keys
from core.errors import ErrorCategory, truncate
from core.security.redact import sanitize_error
from core.state import REPLAY_STATE_TTL_SECONDS

log = logging.getLogger(__name__)

#: Namespace of letter ids (uuid5 of ``domain / stage / key``); changing it orphans open letters.
_LETTER_NAMESPACE = uuid.UUID("7d0c8a52-5b7e-4f0e-9a43-2f8d1c6b9e10")


def letter_id_for(domain: str, stage: str, key: str) -> str:
    """The id of the one letter of work item ``key`` at ``stage`` of ``domain``.

    A work item without a key (nothing to recognise it by) gets a fresh id."""
    if not key:
        return uuid.uuid4().hex
    return uuid.uuid5(_LETTER_NAMESPACE, f"{domain}\x1f{stage}\x1f{key}").hex


def holders_key(held_key: str) -> str:
    """The set of letter ids that keep ``held_key`` alive."""
    return f"{keys.DLQ_PREFIX}:holds:{held_key}"


# KEYS: letter hash, domain index, then (held key, its holder set) pairs.
# ARGV: score, letter id, n, n field/value pairs set on every write, then field/value pairs set only
# when the letter is new. Returns {1 if created else 0, held keys that did not exist}.
_WRITE_LUA = """
local letter, index = KEYS[1], KEYS[2]
local created = redis.call('EXISTS', letter) == 0
local holds = {}
if not created then
  local old = redis.call('HGET', letter, 'holds')
  if old then for _, k in ipairs(cjson.decode(old)) do holds[k] = true end end
end
local n = tonumber(ARGV[3])
local i = 4
for _ = 1, n do redis.call('HSET', letter, ARGV[i], ARGV[i + 1]); i = i + 2 end
if created then
  while i < #ARGV do redis.call('HSET', letter, ARGV[i], ARGV[i + 1]); i = i + 2 end
end
redis.call('HINCRBY', letter, 'failures', 1)
redis.call('ZADD', index, 'NX', ARGV[1], ARGV[2])  -- listed by first failure
local missing = {}
for k = 3, #KEYS, 2 do
  holds[KEYS[k]] = true
  redis.call('SADD', KEYS[k + 1], ARGV[2])
  if redis.call('PERSIST', KEYS[k]) == 0 and redis.call('EXISTS', KEYS[k]) == 0 then
    table.insert(missing, KEYS[k])
  end
end
local list = {}
for k, _ in pairs(holds) do table.insert(list, k) end
table.sort(list)
redis.call('HSET', letter, 'holds', #list > 0 and cjson.encode(list) or '[]')
return {created and 1 or 0, missing}
"""

# KEYS: letter hash, domain index, then (held key, its holder set) pairs.
# ARGV: letter id, the letter's holds as read (JSON), action ('replayed' | 'resolved' | 'open' |
# 'delete'), TTL to give back, expected 'failures' ('' = any). Returns 1 done, 0 no such letter or
# 'failures' no longer as expected (the work failed again meanwhile), -1 holds changed since read.
_SETTLE_LUA = """
local letter, index = KEYS[1], KEYS[2]
if redis.call('EXISTS', letter) == 0 then return 0 end
if ARGV[5] ~= '' and (redis.call('HGET', letter, 'failures') or '1') ~= ARGV[5] then return 0 end  -- no field: written before 'failures' existed
if (redis.call('HGET', letter, 'holds') or '[]') ~= ARGV[2] then return -1 end
local action = ARGV[3]
if action == 'resolved' or action == 'delete' then
  for k = 3, #KEYS, 2 do
    redis.call('SREM', KEYS[k + 1], ARGV[1])
    if redis.call('SCARD', KEYS[k + 1]) == 0 and redis.call('TTL', KEYS[k]) == -1 then
      redis.call('EXPIRE', KEYS[k], ARGV[4])
    end
  end
end
if action == 'delete' then
  redis.call('DEL', letter)
  redis.call('ZREM', index, ARGV[1])
  return 1
end
redis.call('HSET', letter, 'status', action)
if action == 'replayed' then redis.call('HINCRBY', letter, 'replays', 1) end
return 1
"""


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
    failures: int = 1
    """How many times this work item reached a dead letter (redeliveries and failed replays)."""
    holds: list[str] = field(default_factory=list)
    """Redis keys this letter keeps alive because its replay reads them (vault, stash)."""

    def to_redis(self) -> dict[str, str]:
        data = asdict(self)
        data["payload"] = json.dumps(self.payload, sort_keys=True)
        data["holds"] = json.dumps(sorted(self.holds))
        return {k: str(v) for k, v in data.items()}

    @classmethod
    def from_redis(cls, raw: Mapping[bytes | str, bytes | str]) -> DeadLetter:
        known = set(cls.__dataclass_fields__)
        data: dict[str, Any] = {_text(k): _text(v) for k, v in raw.items() if _text(k) in known}
        data["payload"] = json.loads(data["payload"])
        data["attempts"] = int(data["attempts"])
        data["replays"] = int(data.get("replays", 0))
        data["failures"] = int(data.get("failures", 1))
        data["holds"] = json.loads(data.get("holds") or "[]")
        return cls(**data)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class DeadLetterStore:
    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    @staticmethod
    def _key(letter_id: str) -> str:
        return keys.dead_letter(letter_id)

    @staticmethod
    def _index(domain: str) -> str:
        return keys.dead_letter_index(domain)

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
        holds: Sequence[str] = (),
    ) -> DeadLetter:
        """Write (or update) the one letter of work item ``(domain, stage, key)``; see the module
        contract. ``holds``: Redis keys a replay reads, kept alive while the letter exists.

        Returns the letter as stored after this write.
        """
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
            id=letter_id_for(domain, stage, key),
            holds=sorted(set(holds)),
        )
        fields = letter.to_redis()
        create_only = ("domain", "key", "id", "first_failed_at", "replays")
        always = {k: v for k, v in fields.items() if k not in create_only and k not in ("failures", "holds")}
        once = {k: fields[k] for k in create_only}
        argv: list[str | float] = [now.timestamp(), letter.id, len(always)]
        for mapping in (always, once):
            for name, value in mapping.items():
                argv += [name, value]
        held = [k for h in letter.holds for k in (h, holders_key(h))]
        _created, missing = self._r.eval(
            _WRITE_LUA, 2 + len(held), self._key(letter.id), self._index(domain), *held, *argv
        )
        if missing:  # the replay will lack them (e.g. the entry expired before the letter existed)
            log.warning(
                "dead letter written without what its replay needs",
                extra={"letter": letter.id, "missing": [_text(m) for m in missing]},
            )
        return self.get(letter.id) or letter

    def get(self, letter_id: str) -> DeadLetter | None:
        raw = self._r.hgetall(self._key(letter_id))
        return DeadLetter.from_redis(raw) if raw else None

    def list(
        self, domain: str | None = None, *, status: str | None = LetterStatus.OPEN.value, limit: int = 1000
    ) -> list[DeadLetter]:
        domains = [domain] if domain else self.domains()
        letters: list[DeadLetter] = []
        for d in domains:
            for letter_id in self._r.zrange(self._index(d), 0, -1):
                letter = self.get(_text(letter_id))
                if letter and (status is None or letter.status == status):
                    letters.append(letter)
                if len(letters) >= limit:
                    return letters
        return letters

    def domains(self) -> builtins.list[str]:
        """Every domain with letters on record (plug-in domains included), sorted."""
        prefix = keys.dead_letter_index("")
        found = {_text(k)[len(prefix) :] for k in self._r.scan_iter(match=f"{prefix}*", count=100)}
        return sorted(d for d in found if d and ":" not in d)

    def count(self, domain: str, *, status: str | None = LetterStatus.OPEN.value) -> int:
        return len(self.list(domain, status=status, limit=10**9))

    def set_status(self, letter_id: str, status: LetterStatus, *, if_failures: int | None = None) -> bool:
        """Mark a letter ``status``; False when there is no such letter, or when ``if_failures``
        is given and the letter's ``failures`` is no longer that (it failed again meanwhile, e.g.
        a replay sent just before this call already failed and reopened it: it stays open).

        ``resolved`` releases the letter's holds (see the module contract); ``replayed`` keeps them
        and counts the replay."""
        return self._settle(letter_id, status.value, if_failures)

    def purge(self, domain: str, *, status: str | None = None) -> int:
        """Delete letters of ``domain`` (only those with ``status`` when given), releasing their holds."""
        removed = 0
        for letter in self.list(domain, status=status, limit=10**9):
            removed += self._settle(letter.id, "delete")
        return removed

    def _settle(self, letter_id: str, action: str, if_failures: int | None = None) -> bool:
        """Run the settle script, re-reading the holds if a concurrent write changed them."""
        for _ in range(10):
            letter = self.get(letter_id)
            if letter is None:
                return False
            read = self._r.hget(self._key(letter_id), "holds") or b"[]"
            held = [k for h in letter.holds for k in (h, holders_key(h))]
            result = int(
                self._r.eval(
                    _SETTLE_LUA,
                    2 + len(held),
                    self._key(letter_id),
                    self._index(letter.domain),
                    *held,
                    letter_id,
                    read,
                    action,
                    REPLAY_STATE_TTL_SECONDS,
                    "" if if_failures is None else str(if_failures),
                )
            )
            if result >= 0:
                return result == 1
        raise redis.RedisError(f"dead letter {letter_id} kept changing while being settled")
