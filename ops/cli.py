"""``pipeline``: every operator command that is not a Celery command.

Celery's own commands stay as they are: ``celery -A tasks worker -Q xact.download``,
``celery -A tasks beat``, ``celery -A tasks flower``.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from core.errors import ConfigError
from core.settings import Settings, get_settings
from domains.names import Domain


def _settings() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR (default LOG_LEVEL).")
def main(log_level: str | None) -> None:
    """Claims pipeline operator commands."""
    logging.basicConfig(
        level=log_level or _settings().log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )


@main.command()
@click.option("--domain", type=click.Choice([d.value for d in Domain]), required=True)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def publish(domain: str, path: Path) -> None:
    """Publish a JSON-lines file of raw events to the domain's raw topic."""
    from dispatcher.publisher import publish_lines, read_lines

    settings = _settings()
    lines = read_lines(path)
    with click.progressbar(length=len(lines), label=f"publishing to {settings.topic_for(domain)}") as bar:
        sent = publish_lines(settings, Domain(domain), lines, on_sent=bar.update)
    click.echo(f"published {sent} records to {settings.topic_for(domain)}")


@main.command()
@click.option("--idle-exit", type=float, default=None, help="Exit after this many idle seconds.")
def dispatch(idle_exit: float | None) -> None:
    """Consume the raw topics and enqueue one Celery canvas per event."""
    from dispatcher.consumer import Dispatcher
    from tasks import app

    dispatcher = Dispatcher(_settings(), app)
    dispatcher.install_signal_handlers()
    click.echo(f"dispatching from {', '.join(dispatcher.topics)}", err=True)
    dispatcher.run(idle_exit_seconds=idle_exit)


@main.command()
def flush() -> None:
    """Flush staged rows into Delta now (what the Beat schedule does)."""
    import redis

    from writers.flush import flush_all

    settings = _settings()
    for result in flush_all(settings, redis.Redis.from_url(settings.redis_url)):
        if result.rows_in:
            click.echo(f"{result.table.value}: {result.rows_written} rows (version {result.version})")


@main.command()
@click.option("--json", "as_json", is_flag=True)
def summary(as_json: bool) -> None:
    """Counters, table rows, files and dead letters."""
    from dataclasses import asdict

    from ops.status import summarize

    result = summarize(_settings())
    if as_json:
        click.echo(json.dumps(asdict(result), indent=2, default=str))
        return
    from ops.report import render_summary

    click.echo(render_summary(result))


@main.command(name="run")
@click.option(
    "--domain",
    "domains",
    multiple=True,
    type=click.Choice([d.value for d in Domain]),
    help="Domains to run (default: both).",
)
@click.option("--keep-running", is_flag=True, help="Leave the services running after the summary.")
@click.option("--timeout", type=float, default=600.0, show_default=True)
def run_local(domains: tuple[str, ...], keep_running: bool, timeout: float) -> None:
    """Run the whole pipeline locally on the sample events and print a summary."""
    from ops.localrun import run

    sys.exit(
        run(
            domains=[Domain(d) for d in domains] or list(Domain),
            keep_running=keep_running,
            timeout_seconds=timeout,
        )
    )


from ops.dlq_cli import dlq  # noqa: E402 - registered after main exists

main.add_command(dlq)

from dispatcher.poller import poll_command  # noqa: E402

main.add_command(poll_command)

if __name__ == "__main__":
    main()
