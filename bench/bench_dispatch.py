"""Benchmark: dispatcher throughput (Kafka -> Celery canvases) against raw Celery publishing.

    python bench/bench_dispatch.py [--events 5000] [--attachments 0,2] [--batch-size 500] [--repeat 1]
    python bench/bench_dispatch.py --compare-backpressure --repeat 5   # issue 11: cost of the check

For each attachment count, ``--events`` synthetic xact events (``generate.xact_events``) are
published to a fresh Kafka topic first; then the real :class:`dispatcher.consumer.Dispatcher` (in
this process, after a one-record warm-up that joins the consumer group) is timed from the first
record to lag 0: every record parsed, planned, enqueued as Celery messages (no workers run, so the
messages wait in Redis) and its offset committed. Reported: events/s and Celery messages/s.

Baseline in the same run, on the same private Redis and Celery app: ``send_task`` of as many
no-op messages from one process (the cost floor of a Celery publish).

Needs Kafka on 127.0.0.1:9092 and ``redis-server`` on PATH (a private server is started).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator import generate  # noqa: E402 - after the path setup
from tests.e2e.test_faults import PrivateRedis  # noqa: E402 - after the path setup


@dataclass
class Rate:
    what: str
    items: int
    messages: int
    seconds: float

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds


def _lines(rows: list[dict]) -> list[bytes]:
    return [json.dumps(r, separators=(",", ":")).encode() for r in rows]


def _dispatch(
    tmp: Path,
    redis_url: str,
    app,
    events: int,
    attachments: int,
    batch_size: int,
    seed: int,
    backpressure: bool | None = None,
) -> Rate:
    from dispatcher.consumer import Dispatcher
    from ops.status import kafka_lag
    from tests.harness import Harness, create_topics, release_redis_db

    env = {"REDIS_URL": redis_url, "DISPATCH_BATCH_SIZE": str(batch_size)}
    if backpressure is not None:
        # Enabled but never engaged: marks far above anything this run can queue.
        env["BACKPRESSURE_ENABLED"] = "true" if backpressure else "false"
        env.update(
            {
                "BACKPRESSURE_HIGH_WATER": str(10**9),
                "BACKPRESSURE_LOW_WATER": str(10**9 - 1),
                "BACKPRESSURE_STAGED_ROWS_HIGH": str(10**9),
                "BACKPRESSURE_STAGED_ROWS_LOW": str(10**9 - 1),
            }
        )
    h = Harness(tmp, extra_env=env)
    create_topics(list(h.topics.values()) + list(h.dlq_topics.values()))
    dispatcher = Dispatcher(h.settings, app)
    dispatcher.subscribe()
    try:
        h.publish_lines("xact", _lines(generate.xact_events(1, attachments_per_event=0, seed=seed + 1000)))
        deadline = time.monotonic() + 60
        while dispatcher.poll_once().read == 0:  # joins the group, gets partitions, reads the warm-up
            if time.monotonic() > deadline:
                raise TimeoutError("dispatcher warm-up read nothing")
        rows = generate.xact_events(events, attachments_per_event=attachments, file_size=1024, seed=seed)
        h.publish_lines("xact", _lines(rows))
        dispatched = messages = 0
        t0 = time.perf_counter()
        while dispatched < events:
            stats = dispatcher.poll_once(timeout=0.5)
            dispatched += stats.dispatched
            messages += stats.signatures
            if stats.dead_lettered or stats.duplicates:
                raise RuntimeError(f"unexpected: {stats}")
        seconds = time.perf_counter() - t0  # poll_once commits synchronously: lag is 0 here
        if backpressure and dispatcher.backpressure.paused:
            raise RuntimeError("backpressure engaged during a run meant to measure its idle cost")
        if backpressure:
            m = dispatcher.metrics
            print(
                f"# backpressure: {m.backpressure_checks} checks, {m.backpressure_seconds * 1000:.1f} ms "
                f"= {m.backpressure_seconds / seconds:.2%} of the {seconds:.2f} s run",
                flush=True,
            )
        lag = kafka_lag(h.settings, [h.topics["xact"]])
        if lag != 0:
            raise RuntimeError(f"lag {lag} after the timed run")
    finally:
        dispatcher.close()
        release_redis_db(h.redis_db)  # the harness claims a shared test db it does not use here
    label = "" if backpressure is None else f", backpressure {'on (not engaged)' if backpressure else 'off'}"
    return Rate(f"dispatcher, {attachments} attachment(s)/event{label}", events, messages, seconds)


def _send_task_baseline(app, count: int) -> Rate:
    t0 = time.perf_counter()
    for i in range(count):
        app.send_task("bench.noop", args=(i,), queue="bench.noop")
    return Rate("baseline: send_task no-op", count, count, time.perf_counter() - t0)


def _print(rates: list[Rate]) -> None:
    width = max(len(r.what) for r in rates) + 2
    print(f"{'run':<{width}}{'items':>7}{'messages':>10}{'seconds':>9}{'items/s':>10}{'messages/s':>12}")
    for r in rates:
        print(
            f"{r.what:<{width}}{r.items:>7}{r.messages:>10}{r.seconds:>9.2f}"
            f"{r.items_per_second:>10.0f}{r.messages_per_second:>12.0f}"
        )


def _median(runs: list[Rate]) -> Rate:
    best = statistics.median_low(r.seconds for r in runs)
    return next(r for r in runs if r.seconds == best)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--attachments", default="0,2", help="comma list of attachments per event")
    parser.add_argument("--batch-size", type=int, default=500, help="DISPATCH_BATCH_SIZE")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the median is printed")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--compare-backpressure",
        action="store_true",
        help="per attachment count: backpressure enabled-but-not-engaged vs disabled, runs interleaved",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp_dir:
        tmp = Path(tmp_dir)
        broker = PrivateRedis(tmp / "redis")
        broker.start()
        try:
            redis_url = f"{broker.url}/0"
            os.environ["REDIS_URL"] = redis_url  # the Celery app reads the settings at import
            from tasks import app

            print(
                f"# {args.events} events per run, batch {args.batch_size}, repeat {args.repeat}; "
                f"{platform.node()} {os.cpu_count()} CPUs, Python {platform.python_version()}"
            )
            rates: list[Rate] = []
            for k in [int(a) for a in args.attachments.split(",")]:
                if args.compare_backpressure:
                    on: list[Rate] = []
                    off: list[Rate] = []
                    for i in range(args.repeat):  # interleaved, so drift hits both alike
                        for flag, runs in ((True, on), (False, off)):
                            runs.append(
                                _dispatch(
                                    tmp / f"d{k}-{i}-{flag}",
                                    redis_url,
                                    app,
                                    args.events,
                                    k,
                                    args.batch_size,
                                    args.seed + 10 * i + k + (0 if flag else 50_000),  # no ledger hits
                                    backpressure=flag,
                                )
                            )
                    rates += [_median(on), _median(off)]
                    continue
                runs = [
                    _dispatch(
                        tmp / f"d{k}-{i}",
                        redis_url,
                        app,
                        args.events,
                        k,
                        args.batch_size,
                        args.seed + 10 * i + k,
                    )
                    for i in range(args.repeat)
                ]
                rates.append(_median(runs))
            rates.append(_median([_send_task_baseline(app, args.events) for _ in range(args.repeat)]))
        finally:
            broker.stop()
    _print(rates)
    if args.compare_backpressure:
        for on, off in zip(rates[:-1:2], rates[1:-1:2], strict=True):
            print(
                f"{on.what}: {on.items_per_second / off.items_per_second:.1%} of the rate without backpressure"
            )
    floor = rates[-1].messages_per_second
    for r in rates[:-1]:
        print(f"{r.what}: {r.messages_per_second / floor:.0%} of the raw send_task message rate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
