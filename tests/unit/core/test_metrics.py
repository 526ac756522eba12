"""core.metrics: multiprocess aggregation, the HTTP endpoint, readiness, bounded labels; and
core.jsonlog: one redacted JSON object per log line."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from core import metrics as m
from core.jsonlog import JsonFormatter


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # loopback
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _sample(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in the exposition")


def test_multiprocess_dir__is_this_interpreters_own_and_set_for_children() -> None:
    assert m.MULTIPROC_ROOT / str(os.getpid()) == m.MULTIPROC_DIR
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(m.MULTIPROC_DIR)


def test_render__adds_up_the_counters_of_forked_children() -> None:
    """A prefork pool child writes its own file; the parent's exposition sums them all, also after
    the child exited."""
    label = f"unit-{os.getpid()}"
    m.TASK_RUNS.labels(label, "done").inc()
    pids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:  # the child: count 3, then exit without cleanup
            m.TASK_RUNS.labels(label, "done").inc(3)
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    text = m.render().decode()
    assert _sample(text, f'pipeline_task_runs_total{{outcome="done",task="{label}"}}') == 7.0


def test_reap_dead_processes__drops_live_gauges_of_exited_children_only() -> None:
    pid = os.fork()
    if pid == 0:
        m.WORKER_QUEUE_CONSUMERS.labels("unit.child-queue").set(1)
        os._exit(0)
    os.waitpid(pid, 0)
    assert list(Path(m.MULTIPROC_DIR).glob(f"gauge_livemax_{pid}.db"))
    m.WORKER_QUEUE_CONSUMERS.labels("unit.own-queue").set(1)
    text = m.render().decode()  # reaps first
    assert "unit.child-queue" not in text
    assert 'pipeline_worker_queue_consumers{queue="unit.own-queue"} 1.0' in text


def test_endpoint__serves_metrics_health_and_readiness() -> None:
    state = {"redis": True}

    def redis_check() -> None:
        if not state["redis"]:
            raise ConnectionError("Error 111 connecting to redis://:secret-pass@127.0.0.1:1/0")

    health = m.Health(checks={"redis": redis_check}, cache_seconds=0)
    endpoint = m.serve("unit", "127.0.0.1", _free_port(), health=health)
    assert endpoint is not None
    base = f"http://127.0.0.1:{endpoint.port}"
    try:
        status, body = _get(f"{base}/readyz")
        assert status == 200 and json.loads(body) == {
            "role": "unit",
            "ready": True,
            "checks": {"redis": "ok"},
        }
        state["redis"] = False
        status, body = _get(f"{base}/readyz")
        doc = json.loads(body)
        assert status == 503 and doc["ready"] is False
        assert (
            doc["checks"]["redis"].startswith("ConnectionError")
            and "secret-pass" not in doc["checks"]["redis"]
        )
        assert _get(f"{base}/healthz")[0] == 200  # alive, only not ready
        status, body = _get(f"{base}/metrics")
        assert status == 200 and 'pipeline_ready{check="redis"} 0.0' in body.decode()
        assert _get(f"{base}/nothing")[0] == 404
    finally:
        endpoint.close()


def test_serve__a_port_in_use_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert m.serve("unit", "127.0.0.1", port, health=m.Health()) is None
    assert "metrics endpoint not started" in caplog.text
    assert m.serve("unit", "127.0.0.1", 0, health=m.Health()) is None  # 0 = off


def test_health__liveness_reason_gives_503() -> None:
    health = m.Health(live=lambda: "consume loop silent for 300 s")
    endpoint = m.serve("unit", "127.0.0.1", _free_port(), health=health)
    assert endpoint is not None
    try:
        status, body = _get(f"http://127.0.0.1:{endpoint.port}/healthz")
        assert status == 503 and json.loads(body)["reason"] == "consume loop silent for 300 s"
    finally:
        endpoint.close()


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("Must be HTTPS, got http", "not_https"),
        ("Domain not in allowlist: evil.example.com", "host_not_allowed"),
        ("Private or loopback address: 10.0.0.1", "private_address"),
        ("File too large: 3000000000 bytes (limit 2147483648)", "too_large"),
        ("File extension 'exe' not allowed", "extension"),
        ("Content-Type validation failed: 'text/html' is not an allowed type", "content_type"),
        ("Redirect blocked: Domain not in allowlist: x", "redirect_blocked"),
        ("HTTP 404", "http_4xx"),
        ("something new", "other"),
    ],
)
def test_refusal_reason__is_a_bounded_label(message: str, reason: str) -> None:
    assert m.refusal_reason(message) == reason
    assert reason in m.refusal_reasons()


def test_observe_api__endpoint_ids_become_a_template() -> None:
    m.observe_api("export/project/5010001/media", 200, 0.05)
    m.observe_api("export/project/5010002/media", None, 0.05)
    text = m.render().decode()
    assert 'pipeline_claimx_api_requests_total{endpoint="export/project/{id}/media",status="200"}' in text
    assert 'pipeline_claimx_api_requests_total{endpoint="export/project/{id}/media",status="error"}' in text
    assert "5010001" not in text


def test_all_metric_names__every_name_is_prefixed_and_unique() -> None:
    names = m.all_metric_names()
    assert all(n.startswith("pipeline_") for n in names)
    assert len(names) >= 40


# --- JSON logs ------------------------------------------------------------------------------
def _json_log(**extra: object) -> dict:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"unit.jsonlog.{id(stream)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.warning(
        "download failed for https://h.example.com/f.pdf?X-Amz-Signature=abc123&a=1 token=hunter2",
        extra=extra,
    )
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_json_log__one_object_with_the_join_keys() -> None:
    doc = _json_log(event_id="e-1", domain="xact", stage="download", task_id="t-1", attempt=2)
    assert {k: doc[k] for k in ("event_id", "domain", "stage", "task_id", "attempt")} == {
        "event_id": "e-1",
        "domain": "xact",
        "stage": "download",
        "task_id": "t-1",
        "attempt": 2,
    }
    assert doc["level"] == "WARNING" and doc["ts"].endswith("+00:00")


def test_json_log__every_field_is_redacted() -> None:
    doc = _json_log(
        url="https://h.example.com/f?sig=SECRETSIG",
        error="Bearer abc.def.ghi",
        nested={"password": "pw=hunter3"},
    )
    text = json.dumps(doc)
    for secret in ("abc123", "hunter2", "SECRETSIG", "abc.def.ghi", "hunter3"):
        assert secret not in text
    assert "[REDACTED]" in doc["message"]


def test_json_log__tracebacks_are_redacted_line_by_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("unit.jsonlog.exc")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        raise RuntimeError("connect to https://x.example.com/?token=tok-999 failed")
    except RuntimeError:
        logger.exception("boom")
    doc = json.loads(stream.getvalue())
    assert "RuntimeError" in doc["exception"] and "tok-999" not in doc["exception"]
