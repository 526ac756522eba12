"""``pipeline dlq``: list, show, replay, resolve and purge dead letters (SPEC §6.7)."""

from __future__ import annotations

import json

import click
import redis

from core.deadletters import DeadLetterStore, LetterStatus
from core.settings import get_settings
from domains.names import Domain


def _store() -> DeadLetterStore:
    return DeadLetterStore(redis.Redis.from_url(get_settings().redis_url))


@click.group()
def dlq() -> None:
    """Dead letters: permanent failures and exhausted retries."""


@dlq.command(name="list")
@click.option("--domain", type=click.Choice([d.value for d in Domain]), default=None)
@click.option("--status", type=click.Choice([s.value for s in LetterStatus] + ["all"]), default="open")
@click.option("--limit", type=int, default=100, show_default=True)
def list_letters(domain: str | None, status: str, limit: int) -> None:
    letters = _store().list(domain, status=None if status == "all" else status, limit=limit)
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
@click.option("--domain", type=click.Choice([d.value for d in Domain]), default=None)
def replay(letter_ids: tuple[str, ...], replay_all: bool, domain: str | None) -> None:
    """Re-enqueue the original task(s) with their original ids."""
    from tasks import app
    from tasks.canvas import resume

    store = _store()
    letters = store.list(domain) if replay_all else [store.get(i) for i in letter_ids]
    replayed = 0
    for letter in letters:
        if letter is None:
            continue
        resume(app, letter).apply_async()
        store.set_status(letter.id, LetterStatus.REPLAYED)
        replayed += 1
    click.echo(f"replayed {replayed} dead letter(s)")


@dlq.command()
@click.argument("letter_ids", nargs=-1, required=True)
def resolve(letter_ids: tuple[str, ...]) -> None:
    """Mark letters as handled by hand (kept for audit, no longer open)."""
    store = _store()
    for letter_id in letter_ids:
        store.set_status(letter_id, LetterStatus.RESOLVED)
    click.echo(f"resolved {len(letter_ids)} dead letter(s)")


@dlq.command()
@click.option("--domain", type=click.Choice([d.value for d in Domain]), required=True)
@click.option("--status", type=click.Choice([s.value for s in LetterStatus] + ["all"]), default="all")
@click.option("--yes", is_flag=True)
def purge(domain: str, status: str, yes: bool) -> None:
    """Delete dead letters of a domain."""
    if not yes:
        click.confirm(f"Delete {status} dead letters of {domain}?", abort=True)
    removed = _store().purge(domain, status=None if status == "all" else status)
    click.echo(f"purged {removed} dead letter(s)")
