"""``make chaos``: the whole pipeline under a seeded schedule of SIGKILLs, then an exact audit.

    python scripts/chaos.py [--seed 1] [--events 2000] [--kills-each 2] [--fast] [--keep] [--json]

What runs: a private ``redis-server`` (AOF) and a private single-node Kafka (``scripts/chaos_services``,
own ports and data under ``.stack/chaos/``), the simulator, the dispatcher, four workers (xact;
claimx enrich; claimx files; maintenance), and **two** Beats (one leads). Events: ``--events``
mixed xact and claimx events with poison records, failing and expiring links and API faults
(``scripts/chaos_plan``), published in chunks while the kills run.

The kill schedule (seeded: which kinds in which order, the pauses between kills, the targets, the
restart delays) has ``--kills-each`` kills of every kind:

* ``dispatcher`` — SIGKILL of its process group; restarted.
* ``worker`` — SIGKILL of a whole worker's process group (main process and pool); restarted.
* ``pool-child`` — SIGKILL of one pool process; the worker replaces it (no restart).
* ``beat-leader`` — SIGKILL of the Beat holding ``pipeline:beat:leader``; restarted (it stands by).
* ``maintenance-in-flush`` — SIGKILL of the maintenance worker while a table's flush lock is held.
* ``redis`` — SIGKILL of ``redis-server``, restarted on its AOF. Workers are *not* restarted: they
  must reconnect on their own (issue 8 item 5).
* ``kafka`` — SIGKILL of the broker, restarted on its log directory.

Restarts come after a seeded delay (0.5-3 s), as a supervisor would; a process that exits on its
own is restarted too and reported as an *unplanned exit*. After the last kill the run waits until
``pipeline status --json`` reports ``idle`` three polls in a row, then audits against what the
events imply: every expected key exactly once in every table, every expected file in the lake
with the right bytes and no other file, exactly the expected dead letters, every poison record on
its Kafka dead-letter topic. It prints the figures and exits 1 on any loss, duplicate or
unexpected row, file or dead letter (2 when the pipeline never went idle).

``--fast`` shortens the recovery timers (reaper every 5 s, lost work after 20 s, Beat lease 6 s)
for the short variant in ``make test`` (``tests/e2e/test_chaos_short.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from chaos_plan import Expected, Plan, build_plan, expectations  # noqa: E402 - after the path setup
from chaos_services import PrivateKafka, PrivateRedis  # noqa: E402 - after the path setup

KINDS = ("dispatcher", "worker", "pool-child", "beat-leader", "maintenance-in-flush", "redis", "kafka")
CONCURRENCY = {"xact": 3, "claimx-enrich": 2, "claimx-files": 2, "maintenance": 1}
WORK_GROUPS = ("xact", "claimx-enrich", "claimx-files")
BEATS = ("beat-a", "beat-b")
BASE_ENV = {
    # Shortened retry delays (same count as the default); everything else at its default.
    "RETRY_DELAYS_SECONDS": "1,2,4,8",
    # Several processes of one kind on this host: no fixed metrics ports (nor clashes with others).
    "DISPATCHER_METRICS_PORT": "0",
    "WORKER_METRICS_PORT": "0",
    "BEAT_METRICS_PORT": "0",
    "POLLER_METRICS_PORT": "0",
}
FAST_ENV = {
    "REAPER_INTERVAL_SECONDS": "5",
    "REAPER_UNACKED_GRACE_SECONDS": "10",
    "REAPER_LOST_AFTER_SECONDS": "20",
    "BEAT_LEADER_TTL_SECONDS": "6",
}


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass
class Kill:
    kind: str
    at: float  # seconds since the run started
    target: str
    detail: str = ""


@dataclass
class Run:
    """The running world: services, pipeline processes, and what was done to them."""

    args: argparse.Namespace
    work: Path
    redis: PrivateRedis
    kafka: PrivateKafka
    h: Any = None  # tests.harness.Harness (imported once the private services' addresses are set)
    started: float = field(default_factory=time.monotonic)
    kills: list[Kill] = field(default_factory=list)
    unplanned: list[str] = field(default_factory=list)
    restarting: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.monotonic() - self.started

    # --- processes -----------------------------------------------------------------------------
    def start(self, name: str) -> None:
        if name == "dispatcher":
            self.h.start_dispatcher()
        elif name.startswith("worker-"):
            group = name.removeprefix("worker-")
            self.h.start_worker(group, concurrency=CONCURRENCY[group])
        elif name in BEATS:
            self.h.start_process(
                name,
                [sys.executable, "-m", "celery", "-A", "tasks", "beat", "-s", str(self.work / f"{name}.schedule"),
                 "--loglevel", "INFO"],
            )  # fmt: skip
        else:
            raise ValueError(name)

    def supervise(self) -> None:
        """Restart any pipeline process that exited without being killed by the schedule."""
        with self.lock:
            for name, proc in list(self.h.procs.items()):
                if name == "simulator" or name in self.restarting or proc.poll() is None:
                    continue
                self.unplanned.append(f"{name} exited with {proc.returncode} at {self.now():.0f}s")
                log(f"UNPLANNED EXIT: {self.unplanned[-1]}; restarting it")
                self.start(name)


# --- the kills ---------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _wait(predicate, timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:  # noqa: BLE001 - a service may be restarting
            value = None
        if value:
            return value
        time.sleep(interval)
    return None


def _kill_group(run: Run, name: str, rng: random.Random) -> None:
    """SIGKILL ``name``'s process group, restart it after a seeded delay."""
    with run.lock:
        run.restarting.add(name)
        run.h.kill(name)
    time.sleep(rng.uniform(0.5, 3.0))
    with run.lock:
        run.start(name)
        run.restarting.discard(name)


def kill_one(run: Run, kind: str, rng: random.Random) -> Kill:
    h = run.h
    if kind == "dispatcher":
        kill = Kill(kind, run.now(), "dispatcher")
        _kill_group(run, "dispatcher", rng)
    elif kind == "worker":
        name = f"worker-{rng.choice(WORK_GROUPS)}"
        kill = Kill(kind, run.now(), name, f"held {h.redis.hlen('unacked')} unacked (all workers)")
        _kill_group(run, name, rng)
    elif kind == "pool-child":
        name = f"worker-{rng.choice(WORK_GROUPS)}"
        pool = _wait(lambda: _children(h.procs[name].pid), 30) or []
        pid = rng.choice(sorted(pool)) if pool else None
        kill = Kill(kind, run.now(), f"{name} child {pid}")
        if pid:
            os.kill(pid, signal.SIGKILL)
    elif kind == "beat-leader":
        pids = {proc.pid: name for name, proc in h.procs.items() if name in BEATS}

        def leader() -> int | None:
            # host:pid:nonce; a killed leader's key names a gone pid until its lease expires.
            holder = h.redis.get("pipeline:beat:leader")
            pid = int(holder.decode().split(":")[1]) if holder else None
            return pid if pid in pids else None

        pid = _wait(leader, 90, 0.5)
        name = pids.get(pid) or rng.choice(BEATS)
        kill = Kill(kind, run.now(), name, "leader" if pid else "no leader found in 90 s")
        _kill_group(run, name, rng)
    elif kind == "maintenance-in-flush":
        from domains.names import Table

        locks = [f"pipeline:lock:flush:{t.value}" for t in Table]
        held = _wait(lambda: h.redis.exists(*locks), 60, 0.01)
        kill = Kill(
            kind, run.now(), "worker-maintenance", "during a flush" if held else "no flush seen in 60 s"
        )
        _kill_group(run, "worker-maintenance", rng)
    elif kind == "redis":
        kill = Kill(kind, run.now(), "redis-server")
        run.redis.stop(signal.SIGKILL)
        time.sleep(rng.uniform(0.5, 3.0))
        run.redis.start()
    elif kind == "kafka":
        kill = Kill(kind, run.now(), "kafka")
        run.kafka.kill(signal.SIGKILL)
        time.sleep(rng.uniform(0.5, 3.0))
        run.kafka.start()
    else:
        raise ValueError(kind)
    log(f"killed {kill.kind}: {kill.target} {kill.detail}".rstrip())
    return kill


# --- publishing ----------------------------------------------------------------------------------


def _chunks(items: list[bytes], n: int) -> list[list[bytes]]:
    size = max(1, -(-len(items) // n))
    return [items[i : i + size] for i in range(0, len(items), size)]


def publish(run: Run, plan: Plan, chunks: int, slices: queue.Queue) -> None:
    """Publish slice ``i`` of the plan's records (1/``chunks`` of each domain's valid and poison
    records) for each ``i`` taken from ``slices``, until ``None``. A slice that fails while Kafka
    is down is sent again: the dispatch ledger drops what arrives twice."""
    from confluent_kafka import Producer

    xact, claimx = _chunks(plan.xact_lines, chunks), _chunks(plan.claimx_lines, chunks)
    poison = {"xact": _chunks(plan.xact_poison, chunks), "claimx": _chunks(plan.claimx_poison, chunks)}
    raw = Producer({"bootstrap.servers": run.kafka.bootstrap, "acks": "all", "enable.idempotence": True})
    while (i := slices.get()) is not None:
        for domain, lines in (("xact", xact), ("claimx", claimx)):
            if i < len(lines):
                while True:
                    try:
                        run.h.publish_lines(domain, lines[i])
                        break
                    except Exception as exc:  # noqa: BLE001 - Kafka is being restarted
                        log(f"publish retry ({type(exc).__name__})")
                        time.sleep(2)
            for value in poison[domain][i] if i < len(poison[domain]) else []:
                raw.produce(run.h.topics[domain], value=value)
        raw.flush(300)


# --- waiting and auditing --------------------------------------------------------------------------


def pipeline_status(run: Run) -> dict[str, Any] | None:
    """``pipeline status --json`` as an operator's script reads it (``None`` when it fails)."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "ops.cli", "status", "--json"],
            env=run.h.env, cwd=ROOT, capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        return json.loads(out.stdout) if out.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError):
        return None


def _busy(status: dict[str, Any]) -> dict[str, Any]:
    """The non-zero work measures of a status document."""
    out: dict[str, Any] = {}
    for name in ("kafka_lag", "queues", "unacked", "scheduled", "staged", "in_flight"):
        value = status.get(name)
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if v}
        if value:
            out[name] = value
    return out


def wait_idle(run: Run, timeout: float) -> float | None:
    """Seconds since the run started at which ``idle`` held three polls in a row, or ``None``."""
    deadline = time.monotonic() + timeout
    streak_started: float | None = None
    streak = 0
    last_report = 0.0
    while time.monotonic() < deadline:
        run.supervise()
        status = pipeline_status(run)
        if status and status.get("idle"):
            streak_started = run.now() if streak == 0 else streak_started
            streak += 1
            if streak >= 3:
                return streak_started
        else:
            streak = 0
            if status and time.monotonic() - last_report > 30:
                last_report = time.monotonic()
                log(f"not idle yet: {json.dumps(_busy(status), separators=(',', ':'))}")
        time.sleep(2)
    return None


def _table_keys(run: Run, table: str, keys: tuple[str, ...]) -> list[tuple[str, ...]]:
    from domains.names import Table

    frame = run.h.table(Table(table))
    if frame.height == 0:
        return []
    return [tuple(str(v) for v in row) for row in frame.select(list(keys)).iter_rows()]


def _keys_of(table: str) -> tuple[str, ...]:
    from writers.tables import TABLES

    return TABLES[table].keys


def audit(run: Run, exp: Expected) -> dict[str, Any]:
    """Compare the tables, the lake, the dead letters and the Kafka DLQs with ``exp``."""
    from core.deadletters import DeadLetterStore
    from domains.names import Table
    from simulator.files import expected_bytes

    report: dict[str, Any] = {"tables": {}, "files": {}, "dead_letters": {}, "kafka_dlq": {}}
    lost = duplicated = unexpected = 0
    for table, want in sorted(exp.rows.items()):
        got = _table_keys(run, table, _keys_of(table))
        counts = Counter(got)
        dup = sum(n - 1 for n in counts.values() if n > 1)
        missing = want - set(counts)
        extra = set(counts) - want
        report["tables"][table] = {
            "expected": len(want), "rows": len(got), "missing": len(missing), "duplicated": dup,
            "unexpected": len(extra), "missing_sample": sorted(missing)[:3], "unexpected_sample": sorted(extra)[:3],
        }  # fmt: skip
        lost, duplicated, unexpected = lost + len(missing), duplicated + dup, unexpected + len(extra)
    # Lake files: xact blob paths follow from the events; claimx paths are read from the rows.
    claimx_rows = run.h.table(Table.CLAIMX_ATTACHMENTS)
    claimx_paths = (
        dict(
            zip(claimx_rows["media_id"].cast(str).to_list(), claimx_rows["blob_path"].to_list(), strict=True)
        )
        if claimx_rows.height
        else {}
    )
    wanted = {
        "xact": dict(exp.files["xact"]),
        "claimx": {claimx_paths[m]: url for m, url in exp.files["claimx"].items() if m in claimx_paths},
    }
    for domain, files in wanted.items():
        present = run.h.lake_files(domain)
        missing = [p for p in files if p not in present]
        bad = [
            p
            for p, url in files.items()
            if p in present and run.h.lake_file(domain, p).read_bytes() != expected_bytes(url)
        ]
        extra = sorted(set(present) - set(files))
        report["files"][domain] = {
            "expected": len(exp.files[domain]), "files": len(present), "missing": len(missing),
            "wrong_bytes": len(bad), "extra": len(extra), "extra_sample": extra[:3], "bad_sample": bad[:3],
        }  # fmt: skip
        lost += len(missing) + len(bad) + (len(exp.files[domain]) - len(files))
        duplicated += len(extra)
    store = DeadLetterStore(run.h.redis)
    for domain, want in exp.dead_letters.items():
        letters = store.list(domain, status=None, limit=10**6)
        counts = Counter(letter.key for letter in letters)
        dup = sum(n - 1 for n in counts.values() if n > 1)
        missing, extra = want - set(counts), set(counts) - want
        report["dead_letters"][domain] = {
            "expected": len(want), "letters": len(letters), "missing": len(missing), "duplicated": dup,
            "unexpected": len(extra),
            "unexpected_sample": [f"{lt.stage}:{lt.key}:{lt.category}:{lt.error[:80]}" for lt in letters if lt.key in extra][:3],
        }  # fmt: skip
        lost, duplicated, unexpected = lost + len(missing), duplicated + dup, unexpected + len(extra)
    for domain, poison in exp.kafka_dlq.items():
        records = _read_topic(run, run.h.dlq_topics[domain], len(poison))
        report["kafka_dlq"][domain] = {
            "expected": len(poison), "records": len(records), "missing": len(set(poison) - set(records)),
            "unexpected": len(set(records) - set(poison)),
            "redelivered": len(records) - len(set(records)),  # at-least-once topic: reported, not a failure
        }  # fmt: skip
        lost += len(set(poison) - set(records))
        unexpected += len(set(records) - set(poison))
    report.update(lost=lost, duplicated=duplicated, unexpected=unexpected)
    return report


#: Log lines that tell how work came back (counted over every process log of the run).
RECOVERY_LINES = {
    "reaper restored a dead worker's message": "reaper: restored ",
    "reaper re-sent a dead worker's run": "its worker",
    "reaper re-drove lost work": "reaper: re-sent lost ",
    "reaper re-drove a chain from download": "reaper: re-drove attachment chain",
    "celery terminated a late-ack task on connection loss": "Terminating it instead",
    "pool process lost (task requeued)": "WorkerLostError",
}


def recovery_actions(log_dir: Path) -> dict[str, int]:
    """How often each recovery path ran, from the processes' logs."""
    counts = dict.fromkeys(RECOVERY_LINES, 0)
    for path in log_dir.glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            for name, marker in RECOVERY_LINES.items():
                if marker in line and (
                    name != "reaper re-sent a dead worker's run" or "reaper: re-sent" in line
                ):
                    counts[name] += 1
    return counts


def _read_topic(run: Run, topic: str, at_least: int) -> list[bytes]:
    import uuid

    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": run.kafka.bootstrap, "group.id": f"chaos-audit-{uuid.uuid4().hex[:8]}",
         "enable.auto.commit": False, "auto.offset.reset": "earliest"}
    )  # fmt: skip
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        values: list[bytes] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            values += [m.value() or b"" for m in consumer.consume(500, timeout=0.5) if not m.error()]
            if len(values) >= at_least:
                values += [m.value() or b"" for m in consumer.consume(500, timeout=1.0) if not m.error()]
                break
        return values
    finally:
        consumer.close()


# --- the run -------------------------------------------------------------------------------------


def start_world(args: argparse.Namespace, work: Path) -> Run:
    redis_srv, kafka = PrivateRedis(work / "redis"), PrivateKafka(work / "kafka")
    redis_srv.start()
    log(f"private redis-server on {redis_srv.port}; starting a private Kafka on {kafka.port}")
    kafka.start()
    # tests.harness reads these at import: the harness then lives on the private services only.
    os.environ["TEST_REDIS_BASE"] = redis_srv.url
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = kafka.bootstrap
    from tests.harness import Harness, create_topics

    env = {**BASE_ENV, **(FAST_ENV if args.fast else {}), "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap}
    run = Run(args=args, work=work, redis=redis_srv, kafka=kafka)
    run.h = Harness(work, extra_env=env)
    run.h.redis.flushdb()
    create_topics(list(run.h.topics.values()) + list(run.h.dlq_topics.values()))
    run.h.start_simulator()
    for group in CONCURRENCY:
        run.start(f"worker-{group}")
    for name in BEATS:
        run.start(name)
    run.start("dispatcher")
    return run


def schedule(rng: random.Random, kills_each: int) -> list[str]:
    order = [kind for kind in KINDS for _ in range(kills_each)]
    rng.shuffle(order)
    return order


def chaos(run: Run, plan: Plan, rng: random.Random) -> float:
    """Publish while the kills run (a fresh slice of the events at the start of every pause
    between two kills, so every kill meets work in flight); returns the time of the last kill."""
    order = schedule(rng, run.args.kills_each)
    chunks = max(1, len(order))
    slices: queue.Queue = queue.Queue()
    publisher = threading.Thread(target=publish, args=(run, plan, chunks, slices), daemon=True)
    publisher.start()
    slices.put(0)
    _wait(lambda: run.h.counters("xact").get("events_dispatched", 0) > 0, 120, 0.5)
    last = run.now()
    for i, kind in enumerate(order):
        if 0 < i < chunks:
            slices.put(i)
        time.sleep(rng.uniform(*run.args.gap))
        run.supervise()
        kill = kill_one(run, kind, rng)
        run.kills.append(kill)
        last = kill.at
    slices.put(None)
    publisher.join()
    return last


def print_figures(fig: dict[str, Any]) -> None:
    print(f"\n=== chaos run: seed {fig['seed']} ===")
    print(f"events           {fig['events']} valid ({fig['xact_events']} xact, {fig['claimx_events']} claimx), "
          f"{fig['poison']} poison records, {fig['replayed']} records published twice, {fig['fault_rules']} fault rules")  # fmt: skip
    print(
        "kills            "
        + ", ".join(f"{k} {n}" for k, n in fig["kills_per_kind"].items())
        + f" (total {fig['kills']})"
    )
    print(f"unplanned exits  {len(fig['unplanned_exits'])} {fig['unplanned_exits'] or ''}".rstrip())
    idle = fig["time_to_idle_seconds"]
    print(f"time to idle     {'never (timeout)' if idle is None else f'{idle:.0f} s after the last kill'}")
    audit_ = fig.get("audit") or {}
    for table, t in audit_.get("tables", {}).items():
        flag = "OK" if not (t["missing"] or t["duplicated"] or t["unexpected"]) else "FAIL"
        print(f"  {table:28} expected {t['expected']:>5}  rows {t['rows']:>5}  missing {t['missing']}  "
              f"duplicated {t['duplicated']}  unexpected {t['unexpected']}  {flag}"
              + (f"  e.g. {t['missing_sample'] or t['unexpected_sample']}" if flag == "FAIL" else ""))  # fmt: skip
    for domain, f in audit_.get("files", {}).items():
        flag = "OK" if not (f["missing"] or f["wrong_bytes"] or f["extra"]) else "FAIL"
        print(f"  files {domain:22} expected {f['expected']:>5}  files {f['files']:>5}  missing {f['missing']}  "
              f"wrong bytes {f['wrong_bytes']}  extra {f['extra']}  {flag}")  # fmt: skip
    for domain, d in audit_.get("dead_letters", {}).items():
        flag = "OK" if not (d["missing"] or d["duplicated"] or d["unexpected"]) else "FAIL"
        print(f"  dead letters {domain:15} expected {d['expected']:>5}  letters {d['letters']:>3}  missing {d['missing']}  "
              f"duplicated {d['duplicated']}  unexpected {d['unexpected']}  {flag} {d['unexpected_sample'] or ''}".rstrip())  # fmt: skip
    for domain, k in audit_.get("kafka_dlq", {}).items():
        flag = "OK" if not (k["missing"] or k["unexpected"]) else "FAIL"
        print(f"  kafka dlq {domain:18} expected {k['expected']:>5}  records {k['records']:>3}  missing {k['missing']}  "
              f"unexpected {k['unexpected']}  redelivered {k['redelivered']}  {flag}")  # fmt: skip
    if audit_:
        print(f"lost {audit_['lost']}  duplicated {audit_['duplicated']}  unexpected {audit_['unexpected']}")
    actions = ", ".join(f"{name} {n}" for name, n in fig.get("recovery_actions", {}).items() if n)
    print(f"recovery         {actions or 'nothing to recover'}")
    print(f"wall time        {fig['wall_seconds']:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--kills-each", type=int, default=2)
    parser.add_argument(
        "--gap", type=float, nargs=2, default=(4.0, 12.0), help="seconds between kills (min max)"
    )
    parser.add_argument("--fast", action="store_true", help="short recovery timers (the make-test variant)")
    parser.add_argument("--idle-timeout", type=float, default=900.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs, lake, data)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    rng = random.Random(f"chaos-schedule:{args.seed}")
    work = args.workdir or ROOT / ".stack" / "chaos" / f"seed{args.seed}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    plan = build_plan(args.seed, args.events)
    exp = expectations(plan)
    t0 = time.monotonic()
    run: Run | None = None
    code = 1
    try:
        run = start_world(args, work)
        for rule in plan.fault_rules:
            run.h.sim("POST", "/_sim/faults", {"rule": rule})
        log(f"pipeline up; {plan.events} events, {len(plan.fault_rules)} fault rules; kills start")
        last_kill = chaos(run, plan, rng)
        log(f"last kill at {last_kill:.0f}s; waiting for idle")
        idle_at = wait_idle(run, args.idle_timeout)
        fig: dict[str, Any] = {
            "seed": args.seed, "events": plan.events, "xact_events": len(plan.xact_rows),
            "claimx_events": len(plan.claimx_rows), "poison": len(plan.xact_poison) + len(plan.claimx_poison),
            "replayed": plan.replayed, "fault_rules": len(plan.fault_rules), "kills": len(run.kills),
            "kills_per_kind": dict(Counter(k.kind for k in run.kills)),
            "kill_log": [f"{k.at:.0f}s {k.kind} {k.target} {k.detail}".rstrip() for k in run.kills],
            "unplanned_exits": run.unplanned,
            "time_to_idle_seconds": None if idle_at is None else round(idle_at - last_kill, 1),
        }  # fmt: skip
        fig["audit"] = audit(run, exp)
        fig["recovery_actions"] = recovery_actions(work / "logs")
        fig["wall_seconds"] = time.monotonic() - t0
        print_figures(fig)
        if args.json:
            print(json.dumps(fig, default=str))
        (work / "figures.json").write_text(json.dumps(fig, default=str, indent=1))
        a = fig["audit"]
        code = 2 if idle_at is None else (1 if a["lost"] or a["duplicated"] or a["unexpected"] else 0)
    finally:
        if run is not None and run.h is not None:
            run.h.stop_all()
        if run is not None:
            run.kafka.kill(signal.SIGTERM)
            run.redis.stop(signal.SIGTERM)
        if code == 0 and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"run directory kept: {work}")
    return code


if __name__ == "__main__":
    sys.exit(main())
