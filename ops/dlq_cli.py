"""``pipeline dlq``: list, show, replay, resolve and purge dead letters (SPEC §6.7)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click

from core.deadletters import DeadLetter, DeadLetterStore, LetterStatus
from core.redis_client import redis_client
from core.settings import get_settings
from ops.params import DOMAIN


def _store() -> DeadLetterStore:
    return DeadLetterStore(redis_client(get_settings()))


#: Version of the ``pipeline dlq list --json`` document; raised only by an incompatible change.
DLQ_LIST_SCHEMA = 1


def letters_json(letters: list[DeadLetter]) -> dict[str, Any]:
    """``{"schema", "count", "letters": [...]}``; each letter has every stored field (ids and
    references only: a letter never holds a secret)."""
    return {
        "schema": DLQ_LIST_SCHEMA,
        "count": len(letters),
        "letters": [asdict(letter) for letter in letters],
    }


@click.group()
def dlq() -> None:
    """Dead letters: permanent failures and exhausted retries."""


@dlq.command(name="list")
@click.option("--domain", type=DOMAIN, default=None)
@click.option("--status", type=click.Choice([s.value for s in LetterStatus] + ["all"]), default="open")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document (fields: README, read-outs).")
def list_letters(domain: str | None, status: str, limit: int, as_json: bool) -> None:
    """Dead letters, oldest first per domain."""
    letters = _store().list(domain, status=None if status == "all" else status, limit=limit)
    if as_json:
        click.echo(json.dumps(letters_json(letters), indent=2, sort_keys=True, default=str))
        return
    for letter in letters:
        click.echo(
            f"{letter.id}  {letter.domain:6} {letter.stage:8} {letter.category:12} "
            f"attempts={letter.attempts} key={letter.key}  {letter.error[:80]}"
        )
    click.echo(f"{len(letters)} dead letter(s)")


@dlq.command()
@click.argument("letter_id")
def show(letter_id: str) -> None:
    letter = _store().get(letter_id)
    if letter is None:
        raise click.ClickException(f"no dead letter {letter_id}")
    click.echo(json.dumps(letter.__dict__, indent=2, default=str))


@dlq.command()
@click.argument("letter_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every open letter (of --domain).")
@click.option("--domain", type=DOMAIN, default=None)
def replay(letter_ids: tuple[str, ...], replay_all: bool, domain: str | None) -> None:
    """Re-enqueue the original task(s) with their original ids."""
    # Imported here, not at the top: the Celery app and its task modules take most of a second
    # to load, and only replay sends tasks (every other `pipeline` command starts without them).
    from tasks import app
    from tasks.canvas import resume

    store = _store()
    letters = store.list(domain) if replay_all else [store.get(i) for i in letter_ids]
    replayed = 0
    for letter in letters:
        if letter is None:
            continue
        resume(app, letter).apply_async()
        # Only if it has not failed again meanwhile: a replay that already failed has reopened
        # this same letter, which must stay open (a crash before this line leaves it open too:
        # replaying it twice is harmless, every stage is idempotent).
        store.set_status(letter.id, LetterStatus.REPLAYED, if_failures=letter.failures)
        replayed += 1
    click.echo(f"replayed {replayed} dead letter(s)")


@dlq.command()
@click.argument("letter_ids", nargs=-1, required=True)
def resolve(letter_ids: tuple[str, ...]) -> None:
    """Mark letters as handled by hand (kept for audit, no longer open; what they kept alive for
    their replay gets its 30-day TTL back)."""
    store = _store()
    resolved = 0
    for letter_id in letter_ids:
        if store.set_status(letter_id, LetterStatus.RESOLVED):
            resolved += 1
        else:
            click.echo(f"no dead letter {letter_id}", err=True)
    click.echo(f"resolved {resolved} dead letter(s)")


@dlq.command()
@click.option("--domain", type=DOMAIN, required=True)
@click.option("--status", type=click.Choice([s.value for s in LetterStatus] + ["all"]), default="all")
@click.option("--yes", is_flag=True)
def purge(domain: str, status: str, yes: bool) -> None:
    """Delete dead letters of a domain (what they kept alive gets its 30-day TTL back)."""
    if not yes:
        click.confirm(f"Delete {status} dead letters of {domain}?", abort=True)
    removed = _store().purge(domain, status=None if status == "all" else status)
    click.echo(f"purged {removed} dead letter(s)")
