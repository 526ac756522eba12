"""Benchmark: the whole xact pipeline end to end against a no-op canvas of the same shape.

    python bench/bench_e2e.py [--events 1000] [--attachments 0,1] [--repeat 3]
                              [--growth-events 500] [--growth-factors 1,4,16] [--growth-attachments 1]

**Pipeline** (processes started as an operator starts them, ``tests.harness``): the simulator
serving 2 KiB files (``--file-size``), the real dispatcher (``ops.cli dispatch``), one worker
``-c 2`` on all the xact stage queues (``xact.download,xact.upload,xact.write``), the
maintenance worker (``-c 1``) and Beat (flushes every ``--flush-interval`` seconds, by default
the setting's default of 5 s; sweeps every 300 s, the default). A run
publishes ``--events`` synthetic xact events (``simulator.generate``) to Kafka through one
long-lived producer (as the upstream's is) and is timed from the first publish until every event row and every attachment's inventory row is staged (the
``staged_xact_events`` and ``inventory_staged`` counters reach their targets). The pipeline is
then left to go idle (flushed) before the next run.

**Baseline**: a no-op canvas of the same shape on the same ``celeryconfig`` (a Celery app of its
own, without the pipeline's signal handlers), one worker ``-c 2`` on the same queue names with the
same command-line flags: per event one ``xact.write.rows`` task plus, per attachment, the chain
``xact.download -> xact.upload -> xact.write.inventory`` with no-op bodies, published from this
process over one producer. Timed from the first publish until the last task ran.

Besides events/s (wall time), each run records the **CPU time** of its side (every process of
the side and the private Redis; for the pipeline not the simulator, which stands for the remote
file servers; nothing of this bench process): CPU ms per event hardly depends on what else the
machine runs, so on a shared machine it is the figure to compare; the "CPU ratio" is no-op CPU
per event / pipeline CPU per event.

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
    cpu_seconds: float = 0.0  # CPU of the side's processes and the private Redis
    cpu_by_process: dict[str, float] = field(default_factory=dict)  # pipeline runs: per process

    @property
    def cpu_ms_per_event(self) -> float:
        return self.cpu_seconds * 1000 / self.events

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
    pipeline_cpu: list[float] = field(default_factory=list)  # CPU ms per event of each run
    noop_cpu: list[float] = field(default_factory=list)
    cpu_by_process: dict[str, float] = field(default_factory=dict)  # the last pipeline run's

    @property
    def ratio(self) -> float:
        return statistics.median(self.pipeline) / statistics.median(self.noop)


_TICKS = os.sysconf("SC_CLK_TCK")


def _tree_cpu(roots: list[int]) -> float:
    """CPU seconds (user + system, with reaped children) of ``roots`` and their live descendants.

    CPU time, unlike wall time, hardly depends on what else runs on a shared machine: it is the
    figure to compare when the load average is high (pool children that exited were reaped by
    their parent, so their time is in its ``cutime``)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        stats[pid] = sum(int(x) for x in fields[11:15]) / _TICKS
    total, todo, seen = 0.0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        total += stats[pid]
        todo.extend(children.get(pid, []))
    return total


def _wait(predicate, timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


class Pipeline:
    """The real pipeline on ``redis_url`` (see the module docstring)."""

    def __init__(
        self, tmp: Path, redis_url: str, file_size: int, concurrency: int, flush_interval: float
    ) -> None:
        from tests.harness import Harness

        self.file_size = file_size
        # The production Beat schedule (the harness speeds flushes and sweeps up for tests).
        env = {"REDIS_URL": redis_url, "FLUSH_INTERVAL_SECONDS": str(flush_interval)}
        self.h = Harness(tmp, extra_env={**env, "SWEEP_INTERVAL_SECONDS": "300"})
        self.concurrency = concurrency
        self.seed = 1000
        self.shared_roots: list[int] = []  # the private Redis
        self._producer: Any = None

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
        named = self.named_roots
        cpu0 = {name: _tree_cpu([pid]) for name, pid in named.items()}
        t0 = time.perf_counter()
        self._publish(lines)
        _wait(lambda: self._counts() >= target, timeout, f"pipeline run of {events} events")
        seconds = time.perf_counter() - t0
        by = {name: round(_tree_cpu([pid]) - cpu0[name], 2) for name, pid in named.items()}
        self.h.wait_idle(timeout=timeout)  # flushed; the next run starts on a quiet pipeline
        return Run("pipeline", events, attachments, seconds, sum(by.values()), by)

    def _publish(self, lines: list[bytes]) -> None:
        """The events into Kafka through one long-lived producer, as the upstream's is (the poller,
        Event Hubs): a producer made per run spent ~0.4 s connecting inside the timed window."""
        from dispatcher.publisher import new_producer, publish_lines
        from domains.names import Domain

        if self._producer is None:
            self._producer = new_producer(self.h.settings)
        publish_lines(self.h.settings, Domain.XACT, lines, producer=self._producer)

    @property
    def named_roots(self) -> dict[str, int]:
        """Everything of the pipeline but the simulator (it stands for the remote file servers)."""
        own = {name: p.pid for name, p in self.h.procs.items() if name != "simulator"}
        return {**own, **dict(zip(("redis",), self.shared_roots, strict=True))}

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
        self.shared_roots: list[int] = []  # the private Redis

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
        roots = [*([self.proc.pid] if self.proc else []), *self.shared_roots]
        cpu0 = _tree_cpu(roots)
        t0 = time.perf_counter()
        with noop_app.producer_or_acquire() as producer:
            for i in range(events):
                noop_write_rows.s("xact_events", f"ref-{i}", 1).apply_async(producer=producer)
                for _ in range(attachments):
                    chain(noop_download.s(payload), noop_upload.s(), noop_write_inventory.s()).apply_async(
                        producer=producer
                    )
        _wait(lambda: int(self.redis.get(NOOP_DONE_KEY) or 0) >= target, timeout, "no-op run")
        seconds = time.perf_counter() - t0
        return Run("noop", events, attachments, seconds, _tree_cpu(roots) - cpu0)

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
    flush_interval: float = 5.0,
    directory: Path | None = None,
    log=print,
) -> dict[str, Any]:
    """Run the comparison (and the growth run when ``growth_events`` > 0); returns the figures."""
    from tests.e2e.test_faults import PrivateRedis

    with tempfile.TemporaryDirectory(prefix="bench-e2e-", dir=directory) as tmp_dir:
        tmp = Path(tmp_dir)
        broker = PrivateRedis(tmp / "redis")
        broker.start()
        pipeline = Pipeline(tmp / "pipeline", f"{broker.url}/0", file_size, concurrency, flush_interval)
        noop = Noop(tmp / "noop", f"{broker.url}/1", concurrency)
        assert broker.proc is not None
        # CPU counted: each side's processes and the private Redis; not this process (its
        # polling, and the no-op side's publishing, which the pipeline's dispatcher does itself).
        pipeline.shared_roots = noop.shared_roots = [broker.proc.pid]
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
                        mine = run.side == "pipeline"
                        (result.pipeline if mine else result.noop).append(run.events_per_second)
                        (result.pipeline_cpu if mine else result.noop_cpu).append(run.cpu_ms_per_event)
                        log(
                            f"  {run.side:<8} k={run.attachments} {run.events} events "
                            f"{run.seconds:6.2f} s {run.events_per_second:7.1f} ev/s "
                            f"{run.cpu_ms_per_event:6.2f} CPU ms/ev  load {_load()}"
                        )
                        if run.cpu_by_process:
                            log(f"    CPU s by process: {run.cpu_by_process}")
                            result.cpu_by_process = run.cpu_by_process
            loads.append(_load())
            for factor in growth_factors if growth_events > 0 else []:
                run = pipeline.run(growth_events * factor, growth_attachments)
                growth.append(run)
                log(
                    f"  growth x{factor:<3} {run.events} events {run.seconds:6.2f} s "
                    f"{run.seconds_per_event * 1000:6.2f} ms/event "
                    f"{run.cpu_ms_per_event:6.2f} CPU ms/ev  load {_load()}"
                )
            loads.append(_load())
        finally:
            noop.stop()
            pipeline.stop()
            broker.stop()
    base = growth[0].seconds_per_event if growth else None
    cpu_base = growth[0].cpu_ms_per_event if growth else None
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
                "pipeline_cpu_ms_per_event": round(statistics.median(r.pipeline_cpu), 2),
                "noop_cpu_ms_per_event": round(statistics.median(r.noop_cpu), 2),
                "cpu_ratio": round(statistics.median(r.noop_cpu) / statistics.median(r.pipeline_cpu), 3),
                "pipeline_cpu_seconds_by_process": r.cpu_by_process,
                "pipeline_runs": [round(x, 1) for x in r.pipeline],
                "noop_runs": [round(x, 1) for x in r.noop],
            }
            for r in results
            if r.pipeline and r.noop  # --repeat 0: the growth run only
        ],
        "growth": [
            {
                "events": g.events,
                "attachments": g.attachments,
                "seconds": round(g.seconds, 2),
                "ms_per_event": round(g.seconds_per_event * 1000, 2),
                "vs_1x": round(g.seconds_per_event / base, 3) if base else None,
                "cpu_ms_per_event": round(g.cpu_ms_per_event, 2),
                "cpu_vs_1x": round(g.cpu_ms_per_event / cpu_base, 3) if cpu_base else None,
                "cpu_seconds_by_process": g.cpu_by_process,
            }
            for g in growth
        ],
    }


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=1000, help="events per comparison run")
    parser.add_argument("--attachments", default="0,1", help="comma list of attachments per event")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs; the median is reported")
    parser.add_argument("--file-size", type=int, default=2048, help="bytes per attachment")
    parser.add_argument("--concurrency", type=int, default=2, help="-c of the xact and no-op workers")
    parser.add_argument(
        "--flush-interval", type=float, default=5.0, help="FLUSH_INTERVAL_SECONDS (default: the setting's)"
    )
    parser.add_argument(
        "--growth-events",
        type=int,
        default=500,
        help="1x of the growth run (0: skip); a run's fixed start (~0.3 s) weighs ~3 ms/event at 100",
    )
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
        f"task events {'on' if args.task_events else 'off'}, flush every {args.flush_interval:g} s, "
        f"load {_load()}"
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
        flush_interval=args.flush_interval,
    )
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"# {figures['host']}; load average (1/5/15 min) before/after: {' | '.join(figures['load'])}")
    print(
        f"{'attachments/event':<19}{'pipeline ev/s':>14}{'no-op ev/s':>12}{'ratio':>8}"
        f"{'pipeline CPU ms/ev':>20}{'no-op CPU ms/ev':>17}{'CPU ratio':>11}"
    )
    for c in figures["comparison"]:
        print(
            f"{c['attachments']:<19}{c['pipeline_events_per_second']:>14.1f}"
            f"{c['noop_events_per_second']:>12.1f}{c['ratio']:>7.2f}x"
            f"{c['pipeline_cpu_ms_per_event']:>20.2f}{c['noop_cpu_ms_per_event']:>17.2f}"
            f"{c['cpu_ratio']:>10.2f}x"
        )
    if figures["growth"]:
        print(
            f"{'growth events':<19}{'seconds':>10}{'ms/event':>10}{'vs 1x':>8}{'CPU ms/ev':>11}{'vs 1x':>8}"
        )
        for g in figures["growth"]:
            print(
                f"{g['events']:<19}{g['seconds']:>10.2f}{g['ms_per_event']:>10.2f}{g['vs_1x']:>8.2f}"
                f"{g['cpu_ms_per_event']:>11.2f}{g['cpu_vs_1x']:>8.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
