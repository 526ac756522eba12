"""Writes ``claims-pipeline.json`` (the Grafana dashboard) next to this file.

Edit the panels here, run ``.venv/bin/python monitoring/grafana/build_dashboard.py``, commit both.
tests/integration/test_monitoring_rules.py checks that every metric a panel names is declared in
``core.metrics`` and that every declared metric has a panel; the e2e test that a running pipeline
exports each of them.
"""

from __future__ import annotations

import json
from pathlib import Path

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
ROW_HEIGHT = 8

panels: list[dict] = []
_cursor = {"x": 0, "y": 0}


def newrow(title: str) -> None:
    """Start a row of panels (a full-width row header below the previous panels)."""
    if _cursor["x"]:
        _cursor["y"] += ROW_HEIGHT
    _cursor["x"] = 0
    panels.append(
        {
            "type": "row",
            "title": title,
            "id": len(panels) + 1,
            "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": _cursor["y"]},
            "panels": [],
        }
    )
    _cursor["y"] += 1


def panel(
    title: str, targets: list[tuple[str, str]], unit: str = "short", kind: str = "timeseries", w: int = 8
) -> None:
    """One panel; ``targets`` are (PromQL, legend) pairs. Panels fill rows of 24 columns."""
    if _cursor["x"] + w > 24:
        _cursor["x"] = 0
        _cursor["y"] += ROW_HEIGHT
    panels.append(
        {
            "type": kind,
            "title": title,
            "id": len(panels) + 1,
            "datasource": DATASOURCE,
            "gridPos": {"h": ROW_HEIGHT, "w": w, "x": _cursor["x"], "y": _cursor["y"]},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {},
            "targets": [
                {"refId": chr(65 + i), "expr": expr, "legendFormat": legend, "datasource": DATASOURCE}
                for i, (expr, legend) in enumerate(targets)
            ],
        }
    )
    _cursor["x"] += w


newrow("Dispatcher")
panel(
    "Records per second by domain",
    [
        ("sum by (domain) (rate(pipeline_dispatcher_records_read_total[5m]))", "read {{domain}}"),
        ("sum by (domain) (rate(pipeline_dispatcher_events_dispatched_total[5m]))", "dispatched {{domain}}"),
        ("sum by (domain) (rate(pipeline_dispatcher_duplicates_skipped_total[5m]))", "duplicates {{domain}}"),
        ("sum by (domain) (rate(pipeline_dispatcher_dead_lettered_total[5m]))", "dead-lettered {{domain}}"),
    ],
    "ops",
)
panel("Consumer lag by topic", [("sum by (topic) (pipeline_dispatcher_consumer_lag)", "{{topic}}")])
panel(
    "Batch duration (p50, p95)",
    [
        (
            "histogram_quantile(0.5, sum by (le) (rate(pipeline_dispatcher_batch_duration_seconds_bucket[5m])))",
            "p50",
        ),
        (
            "histogram_quantile(0.95, sum by (le) (rate(pipeline_dispatcher_batch_duration_seconds_bucket[5m])))",
            "p95",
        ),
    ],
    "s",
)
panel(
    "Commits and failed batches per second",
    [
        ("sum(rate(pipeline_dispatcher_commits_total[5m]))", "commits"),
        ("sum(rate(pipeline_dispatcher_batch_failures_total[5m]))", "failed batches"),
    ],
    "ops",
)
panel(
    "Backpressure",
    [
        ("max by (domain) (pipeline_dispatcher_paused)", "paused {{domain}}"),
        ("sum by (what) (pipeline_dispatcher_backlog)", "backlog {{what}}"),
    ],
)
panel(
    "Events dispatched (total)",
    [("sum by (domain) (pipeline_dispatcher_events_dispatched_total)", "{{domain}}")],
    kind="stat",
)

newrow("Queues and dead letters")
panel("Queue depth", [("max by (queue) (pipeline_queue_depth)", "{{queue}}")])
panel(
    "Unacknowledged and scheduled retries",
    [
        ("max(pipeline_queue_unacked)", "unacked"),
        ("max(pipeline_retries_scheduled)", "retries scheduled"),
        ("max(pipeline_attachment_chains_in_flight)", "chains in flight"),
    ],
)
panel("Consumers per queue", [("sum by (queue) (pipeline_worker_queue_consumers)", "{{queue}}")])
panel(
    "Open dead letters",
    [
        (
            "max by (domain, stage, category) (pipeline_dead_letters_open) > 0",
            "{{domain}} {{stage}} {{category}}",
        )
    ],
    w=12,
)
panel(
    "Dead letters open (total)",
    [("sum by (domain) (max by (domain, stage, category) (pipeline_dead_letters_open))", "{{domain}}")],
    kind="stat",
    w=12,
)

newrow("Stages")
panel(
    "Task runs per second by outcome",
    [("sum by (task, outcome) (rate(pipeline_task_runs_total[5m]))", "{{task}} {{outcome}}")],
    "ops",
    w=12,
)
panel(
    "Task duration p95",
    [
        (
            "histogram_quantile(0.95, sum by (task, le) (rate(pipeline_task_duration_seconds_bucket[5m])))",
            "{{task}}",
        )
    ],
    "s",
    w=12,
)
panel(
    "Download throughput",
    [("sum by (domain) (rate(pipeline_download_bytes_total[5m]))", "{{domain}}")],
    "Bps",
)
panel(
    "Download duration p95",
    [
        (
            "histogram_quantile(0.95, sum by (domain, le) (rate(pipeline_download_duration_seconds_bucket[5m])))",
            "{{domain}}",
        )
    ],
    "s",
)
panel(
    "Refused downloads by reason",
    [("sum by (domain, reason) (increase(pipeline_download_refused_total[1h]))", "{{domain}} {{reason}}")],
)
panel(
    "Files uploaded (total)",
    [('sum by (domain) (pipeline_counter_total{name="uploaded"})', "{{domain}}")],
    kind="stat",
    w=12,
)
panel(
    "Pipeline counters per second",
    [("sum by (domain, name) (rate(pipeline_counter_total[5m]))", "{{domain}} {{name}}")],
    "ops",
    w=12,
)

newrow("ClaimX API")
panel(
    "Requests per second by endpoint and status",
    [("sum by (endpoint, status) (rate(pipeline_claimx_api_requests_total[5m]))", "{{endpoint}} {{status}}")],
    "reqps",
)
panel(
    "Latency p95 by endpoint",
    [
        (
            "histogram_quantile(0.95, sum by (endpoint, le) (rate(pipeline_claimx_api_latency_seconds_bucket[5m])))",
            "{{endpoint}}",
        )
    ],
    "s",
)
panel(
    "Circuit state (0 closed, 1 half-open, 2 open)",
    [("max by (breaker) (pipeline_claimx_circuit_state)", "{{breaker}}")],
)
panel(
    "Rate-limiter waits",
    [
        ("sum(rate(pipeline_claimx_ratelimit_waits_total[5m]))", "waits/s"),
        ("sum(rate(pipeline_claimx_ratelimit_wait_seconds_total[5m]))", "seconds waited/s"),
    ],
)
panel(
    "Project cache hit ratio",
    [
        (
            'sum(rate(pipeline_claimx_project_cache_total{result="hit"}[15m])) / sum(rate(pipeline_claimx_project_cache_total[15m]))',
            "hit ratio",
        )
    ],
    "percentunit",
)

newrow("Delta tables")
panel("Staged rows per table", [("max by (table) (pipeline_delta_staged_rows)", "{{table}}")])
panel(
    "Flush duration p95",
    [
        (
            "histogram_quantile(0.95, sum by (table, le) (rate(pipeline_delta_flush_duration_seconds_bucket[5m])))",
            "{{table}}",
        )
    ],
    "s",
)
panel(
    "Age of the last successful flush",
    [("max by (table) (pipeline_delta_last_flush_age_seconds)", "{{table}}")],
    "s",
)
panel(
    "Rows written per second",
    [("sum by (table) (rate(pipeline_delta_rows_written_total[5m]))", "{{table}}")],
    "ops",
)
panel("Rows per table", [("max by (table) (pipeline_delta_table_rows)", "{{table}}")], kind="stat")
panel(
    "Commit version per table", [("max by (table) (pipeline_delta_table_version)", "{{table}}")], kind="stat"
)
panel(
    "Flushes by result",
    [("sum by (table, result) (increase(pipeline_delta_flushes_total[1h]))", "{{table}} {{result}}")],
)
panel(
    "Maintenance runs",
    [
        (
            "sum by (table, result) (increase(pipeline_delta_maintenance_runs_total[1d]))",
            "{{table}} {{result}}",
        )
    ],
)

newrow("Poller and health")
panel(
    "Poller rows per second",
    [
        ("sum by (domain) (rate(pipeline_poller_rows_read_total[5m]))", "read {{domain}}"),
        ("sum by (domain) (rate(pipeline_poller_rows_published_total[5m]))", "published {{domain}}"),
    ],
    "ops",
)
panel("Checkpoint age", [("max by (domain) (pipeline_poller_checkpoint_age_seconds)", "{{domain}}")], "s")
panel(
    "Checkpoint position",
    [("max by (domain) (pipeline_poller_checkpoint_timestamp_seconds) * 1000", "{{domain}}")],
    "dateTimeAsIso",
)
panel("Processes up", [('up{job=~"claims-.*"}', "{{job}} {{instance}}")], w=12)
panel(
    "Readiness checks",
    [("min by (job, instance, check) (pipeline_ready)", "{{job}} {{instance}} {{check}}")],
    w=12,
)

dash = {
    "description": "Claims pipeline: dispatcher, queues, stages, ClaimX API, Delta, poller. Beat-exported gauges use max(): a standby Beat exports them too.",
    "uid": "claims-pipeline",
    "title": "Claims pipeline",
    "tags": ["claims-pipeline"],
    "timezone": "utc",
    "schemaVersion": 39,
    "version": 1,
    "refresh": "30s",
    "time": {"from": "now-6h", "to": "now"},
    "editable": True,
    "panels": panels,
    "templating": {"list": []},
    "annotations": {"list": []},
}
out = Path(__file__).resolve().parent / "dashboards" / "claims-pipeline.json"
out.write_text(json.dumps(dash, indent=2) + "\n")
print(f"{out}: {len(panels)} panels")
