"""Monitoring end to end: a real Prometheus server scrapes every process of a pipeline that runs
the xact and claimx samples (dispatcher, four workers, Beat, and an Eventhouse poller on a fake
Kusto), then answers PromQL with the run's figures.

* events dispatched, files uploaded, rows per table and dead letters from Prometheus equal the
  run's summary (Redis counters, the lake's files, the Delta tables, the dead-letter stores);
* every metric the Grafana dashboard and the alert rules name is one Prometheus scraped;
* every target is up and ready, and the alert rules loaded.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.deadletters import DeadLetterStore
from ops.localrun import free_port
from ops.status import Summary, summarize, topic_size
from tests.fakes.kusto_server import KustoFake, ticks
from tests.harness import ROOT, Harness, create_topics
from tests.samples import SAMPLES

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

MONITORING = ROOT / "monitoring"
PORT_SETTINGS = ("DISPATCHER_METRICS_PORT", "WORKER_METRICS_PORT", "BEAT_METRICS_PORT", "POLLER_METRICS_PORT")
POLLER_ROWS = 5


def _job(process: str) -> str | None:
    if process == "dispatcher":
        return "claims-dispatcher"
    if process.startswith("worker-"):
        return "claims-workers"
    if process in ("beat", "poller"):
        return f"claims-{process}"
    return None  # the simulator serves no metrics


@dataclass
class MonitoredHarness(Harness):
    """The test harness, with its own metrics port for every process it starts."""

    metric_ports: dict[str, int] = field(default_factory=dict)
    process_env: dict[str, str] = field(default_factory=dict)

    def start_process(self, name: str, cmd: list[str]) -> subprocess.Popen:
        port = free_port()
        self.metric_ports[name] = port
        saved = dict(self.env_vars)
        self.env_vars.update({key: str(port) for key in PORT_SETTINGS})
        self.env_vars.update(self.process_env)
        try:
            return super().start_process(name, cmd)
        finally:
            self.env_vars = saved


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=10) as resp:  # loopback
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def by(self, promql: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(promql)}

    def scalar(self, promql: str) -> float:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else 0.0

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as resp:  # loopback
            return json.loads(resp.read())


def _start_prometheus(tmp: Path, harness: MonitoredHarness) -> Prometheus:
    jobs: dict[str, list[str]] = {}
    for name, port in harness.metric_ports.items():
        if (job := _job(name)) is not None:
            jobs.setdefault(job, []).append(f"127.0.0.1:{port}")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "rule_files": [str(MONITORING / "alerts.yml")],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": targets}]}
            for job, targets in sorted(jobs.items())
        ],
    }
    (tmp / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115 - lives with the process
    proc = subprocess.Popen(
        [
            shutil.which("prometheus") or "prometheus",
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    prometheus = Prometheus(f"http://127.0.0.1:{port}", proc)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=2):  # loopback
                return prometheus
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise TimeoutError(f"prometheus not ready:\n{(tmp / 'prometheus.log').read_text()[-2000:]}")


@dataclass
class Run:
    harness: MonitoredHarness
    prometheus: Prometheus
    summary: Summary


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed: run `scripts/stack.sh install` (Debian package prometheus)")
    tmp = tmp_path_factory.mktemp("monitoring-e2e")
    harness = MonitoredHarness(tmp)
    prometheus: Prometheus | None = None
    with KustoFake() as kusto:
        try:
            harness.start_all()
            _start_poller(harness, kusto, tmp)
            prometheus = _start_prometheus(tmp, harness)
            assert harness.publish_file("xact", SAMPLES / "xact_events.jsonl") == 20
            assert harness.publish_file("claimx", SAMPLES / "claimx_events.jsonl") == 22
            harness.wait_idle(timeout=240)
            summary = summarize(harness.settings)
            summary.kafka_dead_letters = {
                d: topic_size(harness.settings, t) for d, t in harness.dlq_topics.items()
            }
            yield Run(harness, prometheus, summary)
        finally:
            if prometheus is not None:
                prometheus.proc.terminate()
                prometheus.proc.wait(20)
            harness.stop_all()


def _start_poller(harness: MonitoredHarness, kusto: KustoFake, tmp: Path) -> None:
    """An xact poller on a fake Eventhouse, publishing to a topic of its own (not the run's)."""
    kusto.add_table(
        "Events",
        [
            ("type", "string"),
            ("version", "int"),
            ("utcDateTime", "string"),
            ("traceId", "string"),
            ("data", "dynamic"),
        ],
    )
    first = datetime.now(UTC) - timedelta(minutes=5)
    for i in range(POLLER_ROWS):
        row = {
            "type": "t",
            "version": 1,
            "utcDateTime": "2026-01-05T14:22:31Z",
            "traceId": f"p-{i}",
            "data": {},
        }
        kusto.insert("Events", [row], ticks(first + timedelta(seconds=i)))
    topic = f"poller-{uuid.uuid4().hex[:8]}.xact.events.raw"
    create_topics([topic], partitions=1)
    token = tmp / "kusto.token"
    token.write_text(json.dumps({"https://kusto.kusto.windows.net": kusto.token}))
    harness.process_env = {
        "XACT_EVENTS_TOPIC": topic,
        "XACT_EVENTHOUSE_CLUSTER_URL": kusto.url,
        "XACT_EVENTHOUSE_DATABASE": kusto.database,
        "XACT_EVENTHOUSE_TABLE": "Events",
        "EVENTHOUSE_TOKEN_FILE": str(token),
        "CHECKPOINT_DIR": str(tmp / "checkpoints"),
        "POLL_INTERVAL_SECONDS": "0.5",
    }
    try:
        harness.start_process("poller", [sys.executable, "-m", "ops.cli", "poll", "--domain", "xact"])
    finally:
        harness.process_env = {}


def _eventually(fetch: Callable[[], Any], expected: Any, timeout: float = 45.0) -> Any:
    """Prometheus holds the final figures a scrape or two after the pipeline went idle."""
    deadline = time.monotonic() + timeout
    got = fetch()
    while got != expected and time.monotonic() < deadline:
        time.sleep(1.0)
        got = fetch()
    return got


# --- the run's figures, asked of Prometheus ------------------------------------------------------
def test_prometheus__events_dispatched_equal_the_summary(run: Run) -> None:
    expected = {d: float(run.summary.counters[d].get("events_dispatched", 0)) for d in ("xact", "claimx")}
    assert expected["xact"] > 0 and expected["claimx"] > 0
    got = _eventually(
        lambda: run.prometheus.by("sum by (domain) (pipeline_dispatcher_events_dispatched_total)", "domain"),
        expected,
    )
    assert got == expected


def test_prometheus__files_uploaded_equal_the_summary_and_the_lake(run: Run) -> None:
    expected = {d: float(run.summary.counters[d].get("uploaded", 0)) for d in ("xact", "claimx")}
    assert expected == {d: float(run.summary.files[d][0]) for d in ("xact", "claimx")}
    got = _eventually(
        lambda: run.prometheus.by('sum by (domain) (pipeline_counter_total{name="uploaded"})', "domain"),
        expected,
    )
    assert got == expected


def test_prometheus__rows_per_table_equal_the_delta_tables(run: Run) -> None:
    expected = {t: float(n) for t, n in run.summary.tables.items() if n}
    assert len(expected) >= 8

    def _rows() -> dict[str, float]:
        rows = run.prometheus.by("max by (table) (pipeline_delta_table_rows)", "table")
        return {t: n for t, n in rows.items() if n}

    assert _eventually(_rows, expected) == expected


def test_prometheus__dead_letters_equal_the_summary(run: Run) -> None:
    expected = {d: float(n) for d, n in run.summary.dead_letters.items()}
    assert sum(expected.values()) > 0
    got = _eventually(
        lambda: run.prometheus.by(
            "sum by (domain) (max by (domain, stage, category) (pipeline_dead_letters_open))", "domain"
        ),
        expected,
    )
    assert got == expected
    unparseable = {d: float(n) for d, n in run.summary.kafka_dead_letters.items()}
    got = _eventually(
        lambda: run.prometheus.by("sum by (domain) (pipeline_dispatcher_dead_lettered_total)", "domain"),
        unparseable,
    )
    assert got == unparseable


def test_prometheus__retried_task_runs_equal_the_retry_counters(run: Run) -> None:
    """The task outcome is exact: every retry the stages counted is one run with outcome retried."""
    expected = float(
        sum(
            n for counts in run.summary.counters.values() for k, n in counts.items() if k.endswith("_retried")
        )
    )
    got = _eventually(
        lambda: run.prometheus.scalar('sum(pipeline_task_runs_total{outcome="retried"})'), expected
    )
    assert got == expected
    done = run.prometheus.by('sum by (task) (pipeline_task_runs_total{outcome="done"})', "task")
    assert done.get("xact.upload") == float(run.summary.counters["xact"]["uploaded"])
    # xact letters all come from stage tasks that dead-lettered (claimx enrich also letters single
    # events inside a run that succeeds)
    letters = DeadLetterStore(run.harness.redis).list("xact")
    assert letters
    dead = run.prometheus.scalar('sum(pipeline_task_runs_total{task=~"xact[.].*",outcome="dead_lettered"})')
    assert dead == len(letters)
    refused = [x for x in letters if x.stage == "download" and x.category == "permanent"]
    assert run.prometheus.scalar('sum(pipeline_download_refused_total{domain="xact"})') == len(refused)


def test_prometheus__consumer_lag_is_zero_once_idle(run: Run) -> None:
    partitions = run.prometheus.query("pipeline_dispatcher_consumer_lag")
    assert {p["metric"]["topic"] for p in partitions} == set(run.harness.topics.values())
    assert _eventually(lambda: run.prometheus.scalar("sum(pipeline_dispatcher_consumer_lag)"), 0.0) == 0.0


def test_prometheus__poller_rows_and_checkpoint(run: Run) -> None:
    got = _eventually(
        lambda: run.prometheus.scalar("sum(pipeline_poller_rows_read_total)"), float(POLLER_ROWS)
    )
    assert got == POLLER_ROWS
    age = run.prometheus.scalar("max(pipeline_poller_checkpoint_age_seconds)")
    assert 60 < age < 3600  # the last row was ingested about five minutes ago


# --- targets, dashboard and rules ----------------------------------------------------------------
def test_every_target_is_up_and_ready_and_the_rules_loaded(run: Run) -> None:
    targets = run.prometheus.get("/api/v1/targets")["data"]["activeTargets"]
    assert {t["labels"]["job"] for t in targets} == {
        "claims-dispatcher",
        "claims-workers",
        "claims-beat",
        "claims-poller",
    }
    assert len(targets) == 7
    down = [(t["scrapeUrl"], t["lastError"]) for t in targets if t["health"] != "up"]
    assert not down
    not_ready = run.prometheus.query("pipeline_ready == 0")
    assert not not_ready, not_ready
    groups = run.prometheus.get("/api/v1/rules")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) >= 6 and all(r["health"] == "ok" for r in rules), rules


_NAME = re.compile(r"\b(pipeline_[a-z0-9_]+|up)\b")


def _named_metrics() -> set[str]:
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "claims-pipeline.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    import yaml

    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    return {name for expr in exprs for name in _NAME.findall(expr)}


def test_every_metric_the_dashboard_and_rules_name_is_scraped(run: Run) -> None:
    named = _named_metrics()
    assert len(named) > 40

    def _missing() -> set[str]:
        scraped = set(run.prometheus.get("/api/v1/label/__name__/values")["data"])
        return named - scraped

    assert _eventually(_missing, set()) == set()
