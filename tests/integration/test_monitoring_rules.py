"""The alert rules, the scrape configurations and the Grafana dashboard in ``monitoring/``.

* ``promtool check rules`` / ``check config`` accept them;
* ``promtool test rules`` proves each alert fires on recorded series of its failure (a stopped
  flusher, growing dead letters, growing lag, an open circuit, a queue nobody consumes, a process
  down, Redis gone) and stays quiet on healthy ones (``monitoring/tests/alerts_test.yml``);
* every alert has a test, and every metric the dashboard or the rules name is declared in
  ``core.metrics`` (the e2e test checks that a running pipeline exports them).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from core import metrics

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
_NAME = re.compile(r"\b(pipeline_[a-z0-9_]+)\b")
_SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def _promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run `scripts/stack.sh install` (Debian package prometheus)")
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def _rules() -> list[dict]:
    return [r for g in yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"] for r in g["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "claims-pipeline.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_promtool__check_rules_passes() -> None:
    result = _promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(_rules())} rules found" in result.stdout


def test_promtool__every_alert_fires_on_recorded_series() -> None:
    result = _promtool("test", "rules", "tests/alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (MONITORING / "tests" / "alerts_test.yml").read_text()))
    assert {r["alert"] for r in _rules()} <= tested


def test_promtool__alert_test_fails_when_the_rule_would_not_fire(tmp_path: Path) -> None:
    """The rule tests are not vacuous: with the flush threshold raised, the flush test fails."""
    rules = (
        (MONITORING / "alerts.yml")
        .read_text()
        .replace(
            "pipeline_delta_last_flush_age_seconds) > 600", "pipeline_delta_last_flush_age_seconds) > 60000"
        )
    )
    (tmp_path / "alerts.yml").write_text(rules)
    (tmp_path / "tests").mkdir()
    shutil.copy(MONITORING / "tests" / "alerts_test.yml", tmp_path / "tests" / "alerts_test.yml")
    result = _promtool("test", "rules", "tests/alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "PipelineNoSuccessfulFlush" in result.stdout + result.stderr


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-local.yml"])
def test_promtool__scrape_configs_are_valid(config: str, tmp_path: Path) -> None:
    text = (
        (MONITORING / config)
        .read_text()
        .replace("/etc/prometheus/alerts.yml", str(MONITORING / "alerts.yml"))
    )
    (tmp_path / config).write_text(text)
    shutil.copy(MONITORING / "alerts.yml", tmp_path / "alerts.yml")
    result = _promtool("check", "config", str(tmp_path / config))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_and_rules__name_only_declared_metrics() -> None:
    declared = metrics.all_metric_names()
    named = {n for expr in _dashboard_exprs() + [r["expr"] for r in _rules()] for n in _NAME.findall(expr)}
    unknown = {
        n for n in named if n not in declared and not any(n.removesuffix(s) in declared for s in _SUFFIXES)
    }
    assert not unknown


def test_dashboard__panels_cover_every_declared_metric_family() -> None:
    """Each figure the pipeline exports has a panel (a metric nobody looks at is noise)."""
    named = {n for expr in _dashboard_exprs() for n in _NAME.findall(expr)}
    bases = {n for n in named} | {n.removesuffix(s) for n in named for s in _SUFFIXES}
    unshown = (
        metrics.all_metric_names()
        - bases
        - {
            "pipeline_dispatcher_last_loop_timestamp_seconds",  # liveness, read by /healthz
            "pipeline_dispatcher_dead_lettered_by_stage",
            "pipeline_dispatcher_redis_oom_refusals",
            "pipeline_dispatcher_paused_seconds",
        }
    )
    assert not unshown
