"""``pipeline``: every operator command that is not a Celery command.

Celery's own commands stay as they are: ``celery -A tasks worker -Q xact.download``,
``celery -A tasks beat``, ``celery -A tasks flower``.

Start-up is kept short (``pipeline status --json`` is polled by scripts and by ``pipeline run``):
a command imports what only it needs (Kafka consumer, Celery app, Delta writer, Eventhouse client)
inside its body, and ``poll`` is loaded only when it is asked for.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

import click

from core.errors import ConfigError
from core.jsonlog import use_json_logs
from core.redis_client import redis_client
from core.settings import Settings, get_settings
from dispatcher.publisher import publish_lines, read_lines
from domains.names import Domain
from ops.dlq_cli import dlq
from ops.localrun import run
from ops.params import DOMAIN
from ops.report import render_status, render_summary
from ops.status import collect_status, summarize


class _LazyGroup(click.Group):
    """A group whose listed subcommands are imported only when used (``name -> module:attr``)."""

    lazy = {"poll": "dispatcher.poller:poll_command"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, attr = self.lazy[cmd_name].split(":")
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        return super().get_command(ctx, cmd_name)


def _settings() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(cls=_LazyGroup)
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR (default LOG_LEVEL).")
def main(log_level: str | None) -> None:
    """Claims pipeline operator commands."""
    logging.basicConfig(
        level=log_level or _settings().log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if _settings().log_format == "json":
        use_json_logs()


@main.command()
@click.option("--domain", type=DOMAIN, required=True)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def publish(domain: str, path: Path) -> None:
    """Publish a JSON-lines file of raw events to the domain's raw topic."""
    settings = _settings()
    lines = read_lines(path)
    with click.progressbar(length=len(lines), label=f"publishing to {settings.topic_for(domain)}") as bar:
        sent = publish_lines(settings, Domain(domain), lines, on_sent=bar.update)
    click.echo(f"published {sent} records to {settings.topic_for(domain)}")


@main.command()
@click.option("--idle-exit", type=float, default=None, help="Exit after this many idle seconds.")
def dispatch(idle_exit: float | None) -> None:
    """Consume the raw topics and enqueue one Celery canvas per event."""
    # The Celery app with its task modules, and the metrics endpoint (Prometheus client), take
    # most of a second to load: only the command that needs them loads them.
    from dispatcher.consumer import Dispatcher
    from dispatcher.monitoring import serve_dispatcher
    from tasks import app

    dispatcher = Dispatcher(_settings(), app)
    dispatcher.install_signal_handlers()
    serve_dispatcher(_settings(), dispatcher)  # /metrics, /healthz, /readyz
    click.echo(f"dispatching from {', '.join(dispatcher.topics)}", err=True)
    dispatcher.run(idle_exit_seconds=idle_exit)


@main.command()
def flush() -> None:
    """Flush staged rows into Delta now (what the Beat schedule does)."""
    from writers.flush import flush_all  # deltalake and polars: slow to import

    settings = _settings()
    for result in flush_all(settings, redis_client(settings)):
        if result.rows_in:
            click.echo(f"{result.table.value}: {result.rows_written} rows (version {result.version})")


@main.command()
@click.option("--json", "as_json", is_flag=True)
def summary(as_json: bool) -> None:
    """Counters, table rows, files and dead letters."""
    result = summarize(_settings())
    if as_json:
        click.echo(json.dumps(asdict(result), indent=2, default=str))
        return
    click.echo(render_summary(result))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document (fields: README, read-outs).")
def status(as_json: bool) -> None:
    """What is still to do: Kafka lag, queues, unacked and scheduled tasks, staged rows, work in
    flight, and open dead letters; `idle` is true when none of the work is left."""
    result = collect_status(_settings())
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, sort_keys=True))
        return
    click.echo(render_status(result))


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
    sys.exit(
        run(
            domains=[Domain(d) for d in domains] or list(Domain),
            keep_running=keep_running,
            timeout_seconds=timeout,
        )
    )


main.add_command(dlq)

if __name__ == "__main__":
    main()
