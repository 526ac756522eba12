"""The Eventhouse poller: Kusto table -> the domain's raw Kafka topic, with a durable checkpoint.

One process per domain (``pipeline poll --domain xact``). Each cycle (SPEC §2.2 C):

1. query ``[from, to)`` ascending and bounded: ``from`` is the checkpoint (or ``now - lookback``),
   ``to`` is now. xact resumes on the composite key ``(ingestion_time, traceId)``, so rows sharing
   an ingestion time that a page boundary splits are neither lost nor repeated. claimx has no
   tie-break column: its checkpoint only ever sits at the end of a whole ingestion-time group (a full
   page's trailing group is left for the next page; a page that is one group is re-read whole);
2. re-filter the rows against the checkpoint on the client;
3. publish each row as one JSON line and wait for every delivery report;
4. only then move the checkpoint to the last row, atomically (temp file, fsync, ``os.replace``).

A crash between 3 and 4 publishes the page again (the dispatcher ledger drops the repeats); no
ordering of failures loses a row. A failed query or publish leaves the checkpoint where it was.
A full page is followed at once by the next; otherwise the poller sleeps ``poll_interval_seconds``.
Bulk backfill pages through ``[start, stop)`` until a short page, then exits. SIGTERM/SIGINT stop
the loop after the current cycle. One poller per checkpoint file (an exclusive ``flock``).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import click
from confluent_kafka import Producer

from core.errors import ConfigError, ErrorCategory, PipelineError, TransientError
from core.settings import Settings, get_settings
from dispatcher.checkpoint import CheckpointStore
from dispatcher.kusto import (
    EventhouseClient,
    RetryPolicy,
    format_time,
    ticks_of,
    token_file_provider,
)
from dispatcher.monitoring import observe_poll, serve_poller
from dispatcher.poll_query import (
    Source,
    after_cursor,
    build_group_query,
    build_query,
    complete_groups,
    row_cursor,
)
from dispatcher.publisher import record_key
from domains.names import Domain

log = logging.getLogger("pipeline.poller")


class QueryClient(Protocol):
    def query(self, kql: str) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


class Sink(Protocol):
    def publish(self, lines: Sequence[bytes]) -> None: ...
    def close(self) -> None: ...


def to_line(row: dict[str, Any]) -> bytes:
    """One row as a JSON line (datetimes as ISO-8601; Kusto's own values are already JSON)."""
    return json.dumps(row, default=_json_default, ensure_ascii=False, separators=(",", ":")).encode()


def _json_default(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


class KafkaSink:
    """A long-lived idempotent producer for one domain's raw topic; keys as :func:`record_key`."""

    def __init__(self, settings: Settings, domain: Domain, *, flush_timeout_seconds: float = 60.0) -> None:
        self.domain = domain
        self.topic = settings.topic_for(domain.value)
        self._flush_timeout = flush_timeout_seconds
        self._producer = Producer(
            {
                **settings.kafka_config(),
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 20,
                "compression.type": "lz4",
            }
        )

    def publish(self, lines: Sequence[bytes]) -> None:
        """Return only when every line is acknowledged; else :class:`TransientError`."""
        errors: list[str] = []

        def _report(err, _msg) -> None:  # librdkafka callback
            if err is not None:
                errors.append(str(err))

        for line in lines:
            while True:
                try:
                    self._producer.produce(
                        self.topic, value=line, key=record_key(self.domain, line), on_delivery=_report
                    )
                    break
                except BufferError:
                    self._producer.poll(0.5)
        remaining = self._producer.flush(self._flush_timeout)
        if remaining or errors:
            raise TransientError(
                f"{len(errors) + remaining} of {len(lines)} rows not delivered to {self.topic}: {errors[:3]}"
            )

    def close(self) -> None:
        self._producer.flush(self._flush_timeout)


# --- the poller -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Backfill:
    """Bulk backfill range; ``start=None`` continues from the live checkpoint (and advances it)."""

    start: datetime | None = None
    stop: datetime | None = None


@dataclass(frozen=True)
class PageResult:
    fetched: int
    published: int
    more: bool
    """A full page that made progress: poll again at once."""


class Poller:
    """Polls one domain's Eventhouse table into its raw topic (see the module contract)."""

    def __init__(
        self,
        settings: Settings,
        source: Source,
        client: QueryClient,
        sink: Sink,
        *,
        backfill: Backfill | None = None,
        clock: Callable[[], datetime] | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.client = client
        self.sink = sink
        self.backfill = backfill
        self._clock = clock or (lambda: datetime.now(UTC))
        self._stop = stop_event or threading.Event()
        name = f"poller_{source.domain.value}"
        if backfill is not None and backfill.start is not None:
            name += f"_backfill_{format_time(ticks_of(backfill.start)).replace(':', '').replace('-', '')}"
        self.store = CheckpointStore(Path(settings.checkpoint_dir) / f"{name}.json")
        self.cursor = self.store.load()
        self._start_ticks = ticks_of(backfill.start) if backfill and backfill.start else None
        self._stop_ticks = ticks_of(backfill.stop) if backfill and backfill.stop else None

    @classmethod
    def from_settings(cls, settings: Settings, domain: Domain, *, backfill: Backfill | None = None) -> Poller:
        source = Source.from_settings(settings, domain)
        stop = threading.Event()
        token = (
            token_file_provider(settings.eventhouse_token_file) if settings.eventhouse_token_file else None
        )
        client = EventhouseClient(
            source.cluster_url,
            source.database,
            token_provider=token,
            timeout_seconds=settings.eventhouse_query_timeout_seconds,
            wait=stop.wait,
            retry=RetryPolicy(
                settings.eventhouse_max_retries,
                settings.eventhouse_retry_base_delay_seconds,
                settings.eventhouse_retry_max_delay_seconds,
            ),
        )
        # the client's retry back-off waits on the poller's stop event, so SIGTERM ends them early
        return cls(settings, source, client, KafkaSink(settings, domain), backfill=backfill, stop_event=stop)

    # -- lifecycle -----------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop())

    def close(self) -> None:
        self.client.close()
        self.sink.close()

    def run(self) -> None:
        """Live: poll until :meth:`stop`. Backfill: page until a short page, then return.
        A permanent error (bad table, database, query) is raised; others are retried next cycle
        (live) or raised after the client's bounded retries (backfill)."""
        with self.store.exclusive():
            self.cursor = self.store.load()
            if self.backfill is not None:
                self._run_backfill()
            else:
                self._run_live()

    def _run_live(self) -> None:
        while not self._stop.is_set():
            try:
                result = self.poll_once()
            except PipelineError as exc:
                if exc.category is ErrorCategory.PERMANENT:
                    raise
                log.error(
                    "%s poll failed (%s), checkpoint unchanged: %s",
                    self.source.domain.value,
                    exc.category.value,
                    exc.message,
                )
                result = PageResult(0, 0, more=False)
            if not result.more:
                self._stop.wait(self.settings.poll_interval_seconds)

    def _run_backfill(self) -> None:
        if self._stop_ticks is None:
            # fixed at the start, so the backfill ends under live ingestion
            self._stop_ticks = ticks_of(self._clock()) - int(
                self.settings.eventhouse_settle_seconds * 10_000_000
            )
        while not self._stop.is_set() and self.poll_once().more:
            pass

    # -- one cycle -----------------------------------------------------------------------------
    def poll_once(self) -> PageResult:
        """Query one page, publish its new rows, then move the checkpoint. Raises PipelineError."""
        now = ticks_of(self._clock())
        start = self._start_ticks
        if start is None:
            start = now - int(self.settings.eventhouse_lookback_seconds * 10_000_000)
        end = (
            self._stop_ticks
            if self._stop_ticks is not None
            else (now - int(self.settings.eventhouse_settle_seconds * 10_000_000))
        )
        batch = self.settings.poll_batch_size
        rows = self.client.query(
            build_query(self.source, cursor=self.cursor, start_ticks=start, end_ticks=end, batch_size=batch)
        )
        full = len(rows) >= batch
        fresh = after_cursor(self.source, rows, self.cursor)
        if full and self.source.tiebreak_column is None:
            fresh = self._whole_groups(fresh)
        if fresh:
            self.sink.publish([to_line(row) for row in fresh])
            cursor = max(row_cursor(self.source, row) for row in fresh)
            self.store.save(cursor, now=self._clock())
            self.cursor = cursor
        observe_poll(
            self.source.domain.value, len(rows), len(fresh), self.cursor.ticks if self.cursor else None
        )
        log.info(
            "%s page: %d fetched, %d published, checkpoint %s",
            self.source.domain.value,
            len(rows),
            len(fresh),
            format_time(self.cursor.ticks) if self.cursor else "none",
        )
        if full and not fresh:
            log.warning(
                "%s: a full page brought nothing new; waiting for the next cycle", self.source.domain.value
            )
        return PageResult(len(rows), len(fresh), more=full and bool(fresh))

    def _whole_groups(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """claimx full page: drop its trailing ingestion-time group, or read a one-group page whole."""
        complete = complete_groups(self.source, rows)
        if complete or not rows:
            return complete
        ticks = row_cursor(self.source, rows[0]).ticks
        group = self.client.query(build_group_query(self.source, ticks))
        log.info(
            "%s: %d rows share ingestion time %s; read as one group",
            self.source.domain.value,
            len(group),
            format_time(ticks),
        )
        return after_cursor(self.source, group, self.cursor)


# --- CLI ----------------------------------------------------------------------------------------
@click.command("poll")
@click.option("--domain", type=click.Choice([d.value for d in Domain]), required=True)
@click.option(
    "--backfill/--live",
    default=None,
    help="Bulk backfill: page through [start, stop) until a short page, then exit "
    "(default EVENTHOUSE_BULK_BACKFILL).",
)
@click.option(
    "--start",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]),
    default=None,
    help="Backfill start, UTC unless an offset is given (own checkpoint file).",
)
@click.option(
    "--stop",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]),
    default=None,
    help="Backfill stop, exclusive (default: now at start-up).",
)
def poll_command(domain: str, backfill: bool | None, start: datetime | None, stop: datetime | None) -> None:
    """Poll the domain's Eventhouse table into its raw Kafka topic."""
    try:
        settings = get_settings()
        if backfill is None:  # --start/--stop on the command line imply a backfill
            backfill = settings.eventhouse_bulk_backfill or start is not None or stop is not None
        window = Backfill(
            start or settings.eventhouse_backfill_start, stop or settings.eventhouse_backfill_stop
        )
        poller = Poller.from_settings(settings, Domain(domain), backfill=window if backfill else None)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    poller.install_signal_handlers()
    serve_poller(settings, poller)  # /metrics, /healthz, /readyz
    click.echo(
        f"polling {poller.source.table} into {settings.topic_for(domain)}"
        + (" (bulk backfill)" if poller.backfill else ""),
        err=True,
    )
    try:
        poller.run()
    except (PipelineError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        poller.close()
