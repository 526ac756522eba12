"""Dead letters against a real Redis: one letter per work item, and what a letter needs for its
replay (URL vault entry, row-stash entry) does not expire while the letter is open.

Each test uses a domain name of its own, so its letters, index and vault keys are its own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from core.deadletters import DeadLetter, DeadLetterStore, LetterStatus, holders_key, letter_id_for
from core.state import REPLAY_STATE_TTL_SECONDS, RowStash, UrlVault

pytestmark = pytest.mark.integration


@pytest.fixture
def domain(redis_client: redis.Redis) -> Iterator[str]:
    name = f"test-dlq-{uuid.uuid4().hex[:12]}"
    yield name
    store = DeadLetterStore(redis_client)
    held = [h for letter in store.list(name, status=None) for h in letter.holds]
    store.purge(name)
    doomed = held + [key.decode() for key in redis_client.scan_iter(f"pipeline:*{name}*", count=1000)]
    if doomed:
        redis_client.delete(*doomed)


def _attachment_payload(domain: str, media_id: str) -> dict:
    return {
        "domain": domain,
        "media_id": media_id,
        "event_id": "e-1",
        "url_display": "https://files.example.com/a.pdf",
        "blob_path": "x/a.pdf",
        "file_type": "PDF",
        "file_name": "a.pdf",
    }


def _fail(
    store: DeadLetterStore,
    domain: str,
    key: str,
    *,
    error: str,
    attempts: int = 1,
    holds: list[str] | None = None,
) -> DeadLetter:
    return store.add(
        domain=domain,
        stage="download",
        task_name=f"{domain}.download",
        payload={"media_id": key, "attempt_note": error},
        category="permanent",
        error=error,
        attempts=attempts,
        key=key,
        holds=holds or [],
    )


def test_redelivered_failure__updates_the_one_letter_of_its_work_item(
    redis_client: redis.Redis, domain: str
) -> None:
    store = DeadLetterStore(redis_client)
    first = _fail(store, domain, "m-1", error="HTTP 404 first")
    again = _fail(store, domain, "m-1", error="HTTP 410 again", attempts=3)
    other = _fail(store, domain, "m-2", error="HTTP 404")

    letters = store.list(domain)
    assert sorted(letter.key for letter in letters) == ["m-1", "m-2"]
    assert first.id == again.id == letter_id_for(domain, "download", "m-1") != other.id
    stored = store.get(first.id)
    assert stored is not None
    assert (stored.failures, stored.attempts, stored.error) == (2, 3, "HTTP 410 again")
    assert stored.payload["attempt_note"] == "HTTP 410 again"
    assert stored.first_failed_at == first.first_failed_at and stored.failed_at >= first.failed_at

    # A replay that fails again reopens the same letter; the replay count is kept.
    assert store.set_status(first.id, LetterStatus.REPLAYED)
    assert store.list(domain) == [store.get(other.id)]
    _fail(store, domain, "m-1", error="HTTP 404 after replay")
    reopened = store.get(first.id)
    assert reopened is not None
    assert (reopened.status, reopened.replays, reopened.failures) == ("open", 1, 3)
    assert store.count(domain) == 2

    # The CLI marks "replayed" after sending; a replay that already failed again stays open.
    assert not store.set_status(first.id, LetterStatus.REPLAYED, if_failures=2)
    still = store.get(first.id)
    assert still is not None and still.status == "open"
    assert store.set_status(first.id, LetterStatus.REPLAYED, if_failures=3)


def test_open_letter__keeps_vault_and_stash_entries_past_their_ttl(
    redis_client: redis.Redis, domain: str
) -> None:
    """Entries that would expire after 1 s survive 2 s because an open letter holds them."""
    vault, stash = UrlVault(redis_client, ttl_seconds=1), RowStash(redis_client, ttl_seconds=1)
    vault_key = f"{domain}:m-9"
    vault.put(vault_key, "https://files.example.com/a.pdf?sig=1")
    rows_ref = stash.put([{"trace_id": "t-1"}])
    store = DeadLetterStore(redis_client)
    attachment = _fail(store, domain, "m-9", error="HTTP 404", holds=[UrlVault.redis_key(vault_key)])
    write = store.add(
        domain=domain,
        stage="write",
        task_name=f"{domain}.write.rows",
        payload={"args": ["xact_events", rows_ref, 1]},
        category="unknown",
        error="ConnectionError",
        attempts=5,
        key=rows_ref,
        holds=[rows_ref],
    )
    assert attachment.holds == [UrlVault.redis_key(vault_key)] and write.holds == [rows_ref]
    time.sleep(2.0)
    assert vault.get(vault_key) == "https://files.example.com/a.pdf?sig=1"
    assert stash.get(rows_ref) == [{"trace_id": "t-1"}]
    assert redis_client.ttl(UrlVault.redis_key(vault_key)) == -1 and redis_client.ttl(rows_ref) == -1

    # A new event announcing the same media id refreshes the URL but keeps the entry held.
    vault.put(vault_key, "https://files.example.com/a.pdf?sig=2")
    assert redis_client.ttl(UrlVault.redis_key(vault_key)) == -1
    assert vault.get(vault_key) == "https://files.example.com/a.pdf?sig=2"

    # Replayed: still held (the replayed work deletes the entry when it succeeds).
    assert store.set_status(attachment.id, LetterStatus.REPLAYED)
    assert redis_client.ttl(UrlVault.redis_key(vault_key)) == -1

    # Resolved / purged: the entries get their TTL back.
    assert store.set_status(attachment.id, LetterStatus.RESOLVED)
    assert 0 < redis_client.ttl(UrlVault.redis_key(vault_key)) <= REPLAY_STATE_TTL_SECONDS
    assert not redis_client.exists(holders_key(UrlVault.redis_key(vault_key)))
    assert store.purge(domain) == 2
    assert 0 < redis_client.ttl(rows_ref) <= REPLAY_STATE_TTL_SECONDS
    assert store.list(domain, status=None) == []


def test_key_held_by_two_letters__expires_only_after_both_are_settled(
    redis_client: redis.Redis, domain: str
) -> None:
    vault_key = f"{domain}:m-5"
    UrlVault(redis_client).put(vault_key, "https://files.example.com/b.pdf")
    held = UrlVault.redis_key(vault_key)
    store = DeadLetterStore(redis_client)
    download = _fail(store, domain, "m-5", error="HTTP 404", holds=[held])
    upload = store.add(
        domain=domain,
        stage="upload",
        task_name=f"{domain}.upload",
        payload={},
        category="permanent",
        error="refused",
        attempts=1,
        key="m-5",
        holds=[held],
    )
    assert store.set_status(download.id, LetterStatus.RESOLVED)
    assert redis_client.ttl(held) == -1, "the upload letter still needs the URL"
    assert store.purge(domain, status="open") == 1 and store.get(upload.id) is None
    assert redis_client.ttl(held) > 0


def test_settling_an_unknown_letter__changes_nothing(redis_client: redis.Redis, domain: str) -> None:
    store = DeadLetterStore(redis_client)
    missing = letter_id_for(domain, "download", "nope")
    assert not store.set_status(missing, LetterStatus.RESOLVED)
    assert not redis_client.exists(f"pipeline:dlq:letter:{missing}")


def test_replay_holds__names_what_each_kind_of_replay_reads() -> None:
    from tasks.canvas import replay_holds

    attachment = _attachment_payload("xact", "m-1")
    assert replay_holds("download", "xact.download", attachment) == ["pipeline:url:xact:m-1"]
    assert replay_holds("write", "claimx.write.inventory", {**attachment, "domain": "claimx"}) == [
        "pipeline:url:claimx:m-1"
    ]
    assert replay_holds("write", "xact.write.rows", {"args": ["xact_events", "pipeline:rows:ab", 2]}) == [
        "pipeline:rows:ab"
    ]
    assert replay_holds("enrich", "claimx.enrich", {"args": [[{"event_id": "e"}]]}) == []
    assert replay_holds("download", "xact.download", {"garbage": True}) == []


def test_list_without_a_domain__includes_every_domain_with_letters(
    redis_client: redis.Redis, domain: str
) -> None:
    """A plug-in domain's letters are listed without naming it (no built-in domain list in core)."""
    store = DeadLetterStore(redis_client)
    letter = _fail(store, domain, "m-plugin", error="HTTP 404")
    assert domain in store.domains()
    assert letter.id in {listed.id for listed in store.list(status=None)}
