"""Benchmark: the whole xact pipeline end to end against a no-op canvas of the same shape.

    python bench/bench_e2e.py [--events 500] [--attachments 0,1] [--repeat 3]
                              [--growth-events 100] [--growth-factors 1,4,16] [--growth-attachments 1]

**Pipeline** (processes started as an operator starts them, ``tests.harness``): the simulator
serving 2 KiB files (``--file-size``), the real dispatcher (``ops.cli dispatch``), one worker
``-c 2`` on all the xact stage queues (``xact.download,xact.upload,xact.write``), the
maintenance worker (``-c 1``) and Beat (flushes every ``FLUSH_INTERVAL_SECONDS=1``). A run
publishes ``--events`` synthetic xact events (``simulator.generate``) to Kafka and is timed from
the first publish until every event row and every attachment's inventory row is staged (the
``staged_xact_events`` and ``inventory_staged`` counters reach their targets). The pipeline is
then left to go idle (flushed) before the next run.

**Baseline**: a no-op canvas of the same shape on the same ``celeryconfig`` (a Celery app of its
own, without the pipeline's signal handlers), one worker ``-c 2`` on the same queue names with the
same command-line flags: per event one ``xact.write.rows`` task plus, per attachment, the chain
``xact.download -> xact.upload -> xact.write.inventory`` with no-op bodies, published from this
process over one producer. Timed from the first publish until the last task ran.

Runs are interleaved (pipeline k=0, baseline k=0, pipeline k=1, ...) ``--repeat`` times, each side
on its own database of one private ``redis-server`` (AOF ``everysec``, like the shared stack);
the median is reported with the ratio pipeline / baseline. The **growth** run times the pipeline at
``--growth-events`` x each of ``--growth-factors`` and reports seconds per event (target: flat
within 20 %).

Needs Kafka on 127.0.0.1:9092 and ``redis-server`` on PATH. ``--json`` prints the figures as JSON.

The no-op side runs as ``celery -A bench_e2e:noop_app worker`` (this module, ``bench/`` on the
path): its import is kept light, everything the bench itself needs is imported in functions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

NOOP_DONE_KEY = "bench:e2e:noop:done"


# --- the no-op side (what its worker imports) -------------------------------------------------
def _transport_patches() -> None:
    """The pipeline's kombu patches (``tasks.kombu_fixes``, ``tasks.kombu_clients``), loaded by
    path: the baseline runs on the same transport, without importing the ``tasks`` package (whose
    import would connect the pipeline's signal handlers)."""
    import importlib.util

    for name in ("kombu_fixes", "kombu_clients"):
        path = ROOT / "tasks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"_bench_e2e_{name}", path)
        if spec is None or spec.loader is None or not path.exists():
            continue
        spec.loader.exec_module(importlib.util.module_from_spec(spec))  # each installs itself once


_transport_patches()
noop_app = Celery("bench_e2e_noop")
noop_app.config_from_object("celeryconfig")
_noop_redis: Any = None


def _noop_done() -> None:
    """One INCR per finished unit (a write task, an attachment chain): how the bench sees the end."""
    global _noop_redis
    if _noop_redis is None:
        import redis

        _noop_redis = redis.Redis.from_url(os.environ["REDIS_URL"])
    _noop_redis.incr(NOOP_DONE_KEY)


@noop_app.task(name="xact.write.rows")
def noop_write_rows(table: str, rows_ref: str, count: int) -> int:
    _noop_done()
    return count


@noop_app.task(name="xact.download")
def noop_download(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


@noop_app.task(name="xact.upload")
def noop_upload(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


@noop_app.task(name="xact.write.inventory")
def noop_write_inventory(payload: dict[str, Any]) -> None:
    _noop_done()


# --- the bench ---------------------------------------------------------------------------------
XACT_QUEUES = "xact.download,xact.upload,xact.write"
WORKER_FLAGS = ["--loglevel", "INFO", "--without-heartbeat", "--without-gossip", "--without-mingle"]


@dataclass
class Run:
    side: str  # "pipeline" | "noop"
    events: int
    attachments: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    @property
    def seconds_per_event(self) -> float:
        return self.seconds / self.events


@dataclass
class Result:
    events: int
    attachments: int
    pipeline: list[float] = field(default_factory=list)  # events/s of each run
    noop: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(self.pipeline) / statistics.median(self.noop)


def _wait(predicate, timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


class Pipeline:
    """The real pipeline on ``redis_url`` (see the module docstring)."""

    def __init__(self, tmp: Path, redis_url: str, file_size: int, concurrency: int) -> None:
        from tests.harness import Harness

        self.file_size = file_size
        self.h = Harness(tmp, extra_env={"REDIS_URL": redis_url})
        self.concurrency = concurrency
        self.seed = 1000

    def start(self) -> None:
        from tests.harness import create_topics

        h = self.h
        h.redis.flushdb()
        create_topics(list(h.topics.values()) + list(h.dlq_topics.values()))
        h.start_simulator()
        h.start_worker("xact", concurrency=self.concurrency)
        h.start_worker("maintenance", concurrency=1)
        h.start_beat()
        h.start_dispatcher()
        self.run(5, 1, timeout=120)  # warm-up: workers forked, dispatcher joined, files cached

    def _counts(self) -> tuple[int, int]:
        from core.observability import Metric, staged
        from domains.names import Table

        c = self.h.counters("xact")
        return c.get(staged(Table.XACT_EVENTS.value), 0), c.get(Metric.INVENTORY_STAGED, 0)

    def run(self, events: int, attachments: int, timeout: float = 900) -> Run:
        from simulator import generate

        self.seed += 1
        rows = generate.xact_events(
            events, attachments_per_event=attachments, file_size=self.file_size, seed=self.seed
        )
        lines = [json.dumps(r, separators=(",", ":")).encode() for r in rows]
        rows0, inv0 = self._counts()
        target = (rows0 + events, inv0 + events * attachments)
        t0 = time.perf_counter()
        self.h.publish_lines("xact", lines)
        _wait(lambda: self._counts() >= target, timeout, f"pipeline run of {events} events")
        seconds = time.perf_counter() - t0
        self.h.wait_idle(timeout=timeout)  # flushed; the next run starts on a quiet pipeline
        return Run("pipeline", events, attachments, seconds)

    def stop(self) -> None:
        self.h.stop_all()


class Noop:
    """The no-op canvas on ``redis_url``: one worker of this module's ``noop_app``."""

    def __init__(self, tmp: Path, redis_url: str, concurrency: int) -> None:
        import redis

        self.tmp = tmp
        self.redis_url = redis_url
        self.concurrency = concurrency
        self.redis = redis.Redis.from_url(redis_url)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.redis.flushdb()
        env = {**os.environ, "REDIS_URL": self.redis_url, "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}"}
        self.tmp.mkdir(parents=True, exist_ok=True)
        log = open(self.tmp / "noop-worker.log", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bench_e2e:noop_app", "worker", "-Q", XACT_QUEUES]
            + ["-c", str(self.concurrency), "-n", f"noop-{uuid.uuid4().hex[:4]}@%h", *WORKER_FLAGS],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        noop_app.conf.broker_url = self.redis_url
        self.run(5, 1, timeout=120)  # warm-up

    def run(self, events: int, attachments: int, timeout: float = 900) -> Run:
        from celery import chain

        before = int(self.redis.get(NOOP_DONE_KEY) or 0)
        target = before + events * (1 + attachments)
        payload = {"domain": "xact", "media_id": "m", "pad": "x" * 600}  # about an AttachmentJob
        t0 = time.perf_counter()
        with noop_app.producer_or_acquire() as producer:
            for i in range(events):
                noop_write_rows.s("xact_events", f"ref-{i}", 1).apply_async(producer=producer)
                for _ in range(attachments):
                    chain(noop_download.s(payload), noop_upload.s(), noop_write_inventory.s()).apply_async(
                        producer=producer
                    )
        _wait(lambda: int(self.redis.get(NOOP_DONE_KEY) or 0) >= target, timeout, "no-op run")
        return Run("noop", events, attachments, time.perf_counter() - t0)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def measure(
    *,
    events: int,
    attachments: list[int],
    repeat: int,
    growth_events: int,
    growth_factors: list[int],
    growth_attachments: int,
    file_size: int = 2048,
    concurrency: int = 2,
    directory: Path | None = None,
    log=print,
) -> dict[str, Any]:
    """Run the comparison (and the growth run when ``growth_events`` > 0); returns the figures."""
    from tests.e2e.test_faults import PrivateRedis

    with tempfile.TemporaryDirectory(prefix="bench-e2e-", dir=directory) as tmp_dir:
        tmp = Path(tmp_dir)
        broker = PrivateRedis(tmp / "redis")
        broker.start()
        pipeline = Pipeline(tmp / "pipeline", f"{broker.url}/0", file_size, concurrency)
        noop = Noop(tmp / "noop", f"{broker.url}/1", concurrency)
        results = [Result(events, k) for k in attachments]
        growth: list[Run] = []
        loads = [_load()]
        try:
            pipeline.start()
            noop.start()
            for i in range(repeat):
                for result in results:
                    for side in (pipeline, noop) if i % 2 == 0 else (noop, pipeline):
                        run = side.run(events, result.attachments)
                        (result.pipeline if run.side == "pipeline" else result.noop).append(
                            run.events_per_second
                        )
                        log(
                            f"  {run.side:<8} k={run.attachments} {run.events} events "
                            f"{run.seconds:6.2f} s {run.events_per_second:7.1f} ev/s  load {_load()}"
                        )
            loads.append(_load())
            for factor in growth_factors if growth_events > 0 else []:
                run = pipeline.run(growth_events * factor, growth_attachments)
                growth.append(run)
                log(
                    f"  growth x{factor:<3} {run.events} events {run.seconds:6.2f} s "
                    f"{run.seconds_per_event * 1000:6.2f} ms/event  load {_load()}"
                )
            loads.append(_load())
        finally:
            noop.stop()
            pipeline.stop()
            broker.stop()
    base = growth[0].seconds_per_event if growth else None
    return {
        "host": f"{platform.node()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load": loads,
        "comparison": [
            {
                "attachments": r.attachments,
                "events": r.events,
                "pipeline_events_per_second": round(statistics.median(r.pipeline), 1),
                "noop_events_per_second": round(statistics.median(r.noop), 1),
                "ratio": round(r.ratio, 3),
                "pipeline_runs": [round(x, 1) for x in r.pipeline],
                "noop_runs": [round(x, 1) for x in r.noop],
            }
            for r in results
        ],
        "growth": [
            {
                "events": g.events,
                "attachments": g.attachments,
                "seconds": round(g.seconds, 2),
                "ms_per_event": round(g.seconds_per_event * 1000, 2),
                "vs_1x": round(g.seconds_per_event / base, 3) if base else None,
            }
            for g in growth
        ],
    }


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=500, help="events per comparison run")
    parser.add_argument("--attachments", default="0,1", help="comma list of attachments per event")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs; the median is reported")
    parser.add_argument("--file-size", type=int, default=2048, help="bytes per attachment")
    parser.add_argument("--concurrency", type=int, default=2, help="-c of the xact and no-op workers")
    parser.add_argument("--growth-events", type=int, default=100, help="1x of the growth run (0: skip)")
    parser.add_argument("--growth-factors", default="1,4,16")
    parser.add_argument("--growth-attachments", type=int, default=1)
    parser.add_argument(
        "--task-events",
        action="store_true",
        help="both sides with TASK_EVENTS and TASK_SENT_EVENTS on (Celery task events, as with Flower)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.task_events:  # read by celeryconfig in every process this run starts
        os.environ["TASK_EVENTS"] = os.environ["TASK_SENT_EVENTS"] = "true"

    print(
        f"# bench_e2e: {args.events} events/run, repeat {args.repeat}, "
        f"task events {'on' if args.task_events else 'off'}, load {_load()}"
    )
    figures = measure(
        events=args.events,
        attachments=_ints(args.attachments),
        repeat=args.repeat,
        growth_events=args.growth_events,
        growth_factors=_ints(args.growth_factors),
        growth_attachments=args.growth_attachments,
        file_size=args.file_size,
        concurrency=args.concurrency,
    )
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"# {figures['host']}; load average (1/5/15 min) before/after: {' | '.join(figures['load'])}")
    print(f"{'attachments/event':<19}{'pipeline ev/s':>14}{'no-op ev/s':>12}{'ratio':>8}")
    for c in figures["comparison"]:
        print(
            f"{c['attachments']:<19}{c['pipeline_events_per_second']:>14.1f}"
            f"{c['noop_events_per_second']:>12.1f}{c['ratio']:>7.2f}x"
        )
    if figures["growth"]:
        print(f"{'growth events':<19}{'seconds':>10}{'ms/event':>10}{'vs 1x':>8}")
        for g in figures["growth"]:
            print(f"{g['events']:<19}{g['seconds']:>10.2f}{g['ms_per_event']:>10.2f}{g['vs_1x']:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
