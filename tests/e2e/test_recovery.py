"""Issue 8 items 1-3: retries wait in the durable schedule; work whose worker is gone and work the
broker lost is re-driven; nothing ends up twice.

Real processes (``tests.harness``): Celery workers, Beat, the dispatcher and the simulator, on a
Redis database of the harness's own. Faults come from outside only: the simulator's delay and
status faults, SIGSTOP/SIGKILL by PID, and messages deleted from a queue list (what kombu's fetch
window does to a message when a worker's main process dies between ``BRPOP`` and recording it as
unacknowledged).
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.deadletters import DeadLetterStore
from domains.ids import xact_media_id
from domains.names import Table
from simulator import synthetic
from simulator.files import expected_bytes
from tests.harness import Harness, create_topics
from tests.samples import SAMPLES

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

HOST = "xn-exportreceiver.s3.example.com"
SCHEDULE = "pipeline:schedule:due"


# --- helpers ---------------------------------------------------------------------------------------
def xact_event(assignment: str, *, attachment: bool = True) -> tuple[bytes, str | None, str | None]:
    """(record, media id, URL path on the simulator) of one xact event with at most one attachment."""
    row = json.loads((SAMPLES / "xact_events.jsonl").read_text().splitlines()[0])
    trace_id = str(uuid.uuid4())
    url = f"https://{HOST}/exports/{assignment}/{trace_id[:8]}/report.pdf"
    row["traceId"] = trace_id
    row["data"]["assignmentId"] = assignment
    row["data"]["attachments"] = [url] if attachment else []
    return json.dumps(row).encode(), (xact_media_id(trace_id, url) if attachment else None), url


def claimx_project_event(pid: int) -> bytes:
    return json.dumps(
        {
            "eventType": "PROJECT_CREATED",
            "projectId": str(pid),
            "mediaId": None,
            "taskAssignmentId": None,
            "videoCollaborationId": None,
            "masterFileName": None,
            "IngestionTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        }
    ).encode()


def wait_for(h: Harness, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}\n{h.logs()}")


def messages(h: Harness, queue: str) -> list[tuple[bytes, dict[str, Any]]]:
    return [(raw, json.loads(raw)["headers"]) for raw in h.redis.lrange(queue, 0, -1)]


def drop(h: Harness, queue: str, task: str) -> str:
    """Delete the first ``task`` message from ``queue`` (a message lost in the fetch window);
    returns its task id."""
    raw, headers = wait_for(
        h,
        lambda: next(((r, hd) for r, hd in messages(h, queue) if hd["task"] == task), None),
        60,
        f"a {task} message on {queue}",
    )
    assert h.redis.lrem(queue, 1, raw) == 1
    return headers["id"]


def start_base(h: Harness, *, maintenance: bool = True) -> None:
    """Simulator, Beat, dispatcher (and the maintenance worker): no stage workers yet."""
    h.redis.flushdb()
    create_topics(list(h.topics.values()) + list(h.dlq_topics.values()))
    h.start_simulator()
    if maintenance:
        h.start_worker("maintenance", concurrency=1)
    h.start_beat()
    h.start_dispatcher()


def live_nodes(h: Harness) -> set[str]:
    nodes = [n.decode() for n in h.redis.hkeys("pipeline:workers")]
    return {n for n in nodes if h.redis.exists(f"pipeline:worker:alive:{n}")}


def running(h: Harness) -> dict[str, dict[str, Any]]:
    return {k.decode(): json.loads(v) for k, v in h.redis.hgetall("pipeline:running").items()}


def unacked_ids(h: Harness) -> set[str]:
    return {json.loads(v)[0]["headers"]["id"] for v in h.redis.hvals("unacked")}


def assert_exactly_once(h: Harness, media_ids: list[str], keys_by_table: dict[Table, list[str]]) -> None:
    inventory = h.table(Table.XACT_ATTACHMENTS)
    for media_id in media_ids:
        assert inventory.filter(inventory["media_id"] == media_id).height == 1, media_id
    for table, expected in keys_by_table.items():
        frame = h.table(table)
        column = "trace_id" if table is Table.XACT_EVENTS else "project_id"
        values = frame[column].to_list()
        for key in expected:
            assert values.count(key) == 1, (table, key)


def stored_file(h: Harness, media_id: str) -> Path:
    inventory = h.table(Table.XACT_ATTACHMENTS)
    row = inventory.filter(inventory["media_id"] == media_id).row(0, named=True)
    return h.lake_file("xact", row["blob_path"])


# --- 1. retries wait in the durable schedule -------------------------------------------------------
def test_a_retry_waits_in_the_durable_schedule_not_in_the_broker_and_is_released_on_time(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, extra_env={"RETRY_DELAYS_SECONDS": "4,4,4", "RETRY_JITTER": "false"})
    try:
        h.start_all()
        line, media_id, url = xact_event("RETRY-1")
        h.sim(
            "POST",
            "/_sim/faults",
            {"rule": {"path_prefix": url[len("https:/") :], "status": 503, "times": 1}},
        )
        assert h.publish_lines("xact", [line]) == 1

        task_id = wait_for(h, lambda: h.redis.zrange(SCHEDULE, 0, 0), 60, "a scheduled retry")[0].decode()
        due = float(h.redis.zscore(SCHEDULE, task_id))
        # The failed run's message is acknowledged as it ends (just after the entry was written) ...
        wait_for(h, lambda: task_id not in unacked_ids(h), 2, "the failed run's acknowledgement")
        assert time.time() < due - 1, "too late to look at the broker while the retry waits"
        # ... and nothing of it is in the broker while it waits: no ETA message, none queued.
        for raw in h.redis.hvals("unacked"):
            headers = json.loads(raw)[0]["headers"]
            assert headers.get("eta") is None and headers["id"] != task_id
        for queue in ("xact.download", "xact.upload", "xact.write"):
            assert all(hd["id"] != task_id for _raw, hd in messages(h, queue))

        wait_for(h, lambda: h.redis.zscore(SCHEDULE, task_id) is None, 30, "the retry's release")
        released = time.time()
        assert due - 0.05 <= released <= due + 2.5, (due, released)
        print(f"retry released {released - due:+.2f} s from its due time")

        h.wait_idle(timeout=60)
        assert stored_file(h, media_id).read_bytes() == expected_bytes(url[len("https://") :])
        assert h.counters("xact")["download_retried"] == 1
        # Celery handled it as a retry of the same task (so the worker sent ``task-retried``).
        assert f"xact.download[{task_id}] retry" in (h.log_dir / "worker-xact.log").read_text()
        assert_exactly_once(h, [media_id], {})
    finally:
        h.stop_all()


# --- 2. work lost in the fetch window, every kind ----------------------------------------------------
FAST_REAPER = {
    "REAPER_INTERVAL_SECONDS": "1",
    "REAPER_LOST_AFTER_SECONDS": "3",
    "REAPER_UNACKED_GRACE_SECONDS": "3",
    "WORKER_HEARTBEAT_SECONDS": "1",
}


def test_work_lost_in_the_fetch_window_is_re_driven_for_every_task_kind(tmp_path: Path) -> None:
    """download, write.rows, enrich, upload, write.inventory (the reaper) and flush (the next
    Beat tick), each deleted from its queue list after dispatch: all of it ends, exactly once."""
    # A shared cache sends uploads to xact.upload, where the test can hold them.
    env = {**FAST_REAPER, "SHARED_CACHE": "true", "CACHE_DIR": str(tmp_path / "cache")}
    h = Harness(tmp_path, extra_env=env)
    lost_at: dict[str, float] = {}
    redriven_after: dict[str, float] = {}

    def await_redrive(kind: str, counter: Callable[[], int], before: int) -> None:
        wait_for(h, lambda: counter() > before, 300, f"{kind} re-driven")
        redriven_after[kind] = time.time() - lost_at[kind]

    def tasks_redriven(domain: str) -> Callable[[], int]:
        return lambda: h.counters(domain).get("tasks_redriven", 0)

    def chains_redriven() -> int:
        return h.counters("xact").get("chains_redriven", 0)

    try:
        start_base(h)
        xact_line, media_id, url = xact_event("LOST-1")
        pid = synthetic.project_id(301)
        assert h.publish_lines("xact", [xact_line]) == 1
        assert h.publish_lines("claimx", [claimx_project_event(pid)]) == 1

        # download, the event's write.rows and the enrich unit vanish from their queues.
        drop(h, "xact.download", "xact.download")
        lost_at["download"] = time.time()
        drop(h, "xact.write", "xact.write.rows")
        lost_at["write.rows"] = time.time()
        drop(h, "claimx.enrich", "claimx.enrich")
        lost_at["enrich"] = time.time()

        h.start_worker_process("w-download", "xact.download,claimx.enrich,claimx.write")
        await_redrive("download", chains_redriven, 0)
        await_redrive("enrich", tasks_redriven("claimx"), 0)
        await_redrive("write.rows", tasks_redriven("xact"), 0)

        # The re-driven download sends its upload to xact.upload (nobody consumes it yet): lose it.
        drop(h, "xact.upload", "xact.upload")
        lost_at["upload"] = time.time()
        await_redrive("upload", chains_redriven, 1)
        h.start_worker_process("w-upload", "xact.upload")

        # The upload sends write.inventory to xact.write (nobody consumes it yet): lose it too.
        drop(h, "xact.write", "xact.write.inventory")
        lost_at["write.inventory"] = time.time()
        await_redrive("write.inventory", chains_redriven, 2)
        h.start_worker_process("w-write", "xact.write")

        # flush: Beat sends pipeline.flush every second; lose every one for a while.
        h.kill("worker-maintenance")
        wait_for(h, lambda: h.redis.llen("pipeline.maintenance") > 0, 30, "a flush message")
        h.redis.delete("pipeline.maintenance")
        lost_at["flush"] = time.time()
        h.start_worker_process("maintenance-2", "pipeline.maintenance", concurrency=1)

        h.wait_idle(timeout=180)
        redriven_after["flush"] = time.time() - lost_at["flush"]
        assert max(redriven_after.values()) < 300, redriven_after
        print(f"re-driven after (s): { {k: round(v, 1) for k, v in redriven_after.items()} }")

        trace_id = json.loads(xact_line)["traceId"]
        assert_exactly_once(h, [media_id], {Table.XACT_EVENTS: [trace_id], Table.CLAIMX_PROJECTS: [str(pid)]})
        assert stored_file(h, media_id).read_bytes() == expected_bytes(url[len("https://") :])
        assert len(h.lake_files("xact")) == 1  # one file, though its chain ran three times
        assert DeadLetterStore(h.redis).list("xact") == [] and DeadLetterStore(h.redis).list("claimx") == []
    finally:
        h.stop_all()


# --- 3. a whole worker killed while it holds a download, an enrich and a write.rows -----------------
def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def test_a_killed_worker_s_download_enrich_and_write_rows_complete_elsewhere_within_2_minutes(
    tmp_path: Path,
) -> None:
    """Default settings apart from the harness's short retry delays. The victim runs a download
    and an enrich (both held by simulator delays) and has a write.rows delivered to a pool child
    that is stopped (so it is held, unacknowledged and not started); then the whole worker (main
    process and children) is SIGKILLed. A worker started after the kill finishes all three."""
    h = Harness(tmp_path)
    try:
        start_base(h)
        xact_line, media_id, url = xact_event("KILL-1")
        pid = synthetic.project_id(302)
        hold = {"delay_seconds": 600}
        h.sim("POST", "/_sim/faults", {"rule": {"path_prefix": url[len("https:/") :], **hold}})
        h.sim("POST", "/_sim/faults", {"rule": {"path_prefix": f"/export/project/{pid}", **hold}})

        victim_node = f"victim-{uuid.uuid4().hex[:4]}@ghost-{uuid.uuid4().hex[:4]}"
        h.start_worker_process(
            "victim",
            "xact.download,claimx.enrich,xact.write,claimx.write",
            concurrency=3,
            node=victim_node,
        )
        victim = h.procs["victim"]
        wait_for(h, lambda: victim_node in live_nodes(h), 60, "the victim worker")

        assert h.publish_lines("xact", [xact_line]) == 1
        assert h.publish_lines("claimx", [claimx_project_event(pid)]) == 1
        held = wait_for(
            h,
            lambda: (
                {
                    rec["task"]: (tid, rec["pid"])
                    for tid, rec in running(h).items()
                    if rec["worker"] == victim_node and rec["task"] in ("xact.download", "claimx.enrich")
                }
                if len([r for r in running(h).values() if r["worker"] == victim_node]) == 2
                and not h.redis.llen("xact.write")
                and not h.redis.llen("claimx.write")
                else None
            ),
            60,
            "the victim running the download and the enrich",
        )
        assert set(held) == {"xact.download", "claimx.enrich"}
        idle = _children(victim.pid) - {p for _t, p in held.values()}
        assert len(idle) == 1
        os.kill(idle.pop(), signal.SIGSTOP)  # the victim's main process still hands it work

        rows_line, _none, _url = xact_event("KILL-ROWS", attachment=False)
        assert h.publish_lines("xact", [rows_line]) == 1
        rows_id = wait_for(
            h,
            lambda: next(
                (
                    i
                    for i in unacked_ids(h)
                    if i not in {t for t, _p in held.values()} and i not in running(h)
                ),
                None,
            ),
            60,
            "the write.rows delivered to the victim",
        )
        killed = time.time()
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(30)

        h.sim("DELETE", "/_sim/faults")
        h.start_worker_process("survivor", "xact.download,xact.upload,xact.write,claimx.enrich,claimx.write")
        download_id, enrich_id = held["xact.download"][0], held["claimx.enrich"][0]
        tracked = {"download": download_id, "enrich": enrich_id, "write.rows": rows_id}

        def finished() -> bool:
            chain_ended = not h.redis.zscore("pipeline:pending:index", f"xact:{media_id}")
            singles = [h.redis.zscore("pipeline:inflight:index", i) is None for i in (enrich_id, rows_id)]
            return chain_ended and all(singles)

        wait_for(h, finished, 120 - (time.time() - killed), f"{tracked} completed on the survivor")
        took = time.time() - killed
        print(f"completed on another worker {took:.1f} s after the kill")
        assert took < 120

        h.wait_idle(timeout=120)
        trace_ids = [json.loads(line)["traceId"] for line in (xact_line, rows_line)]
        assert_exactly_once(h, [media_id], {Table.XACT_EVENTS: trace_ids, Table.CLAIMX_PROJECTS: [str(pid)]})
        assert stored_file(h, media_id).read_bytes() == expected_bytes(url[len("https://") :])
        assert len(h.lake_files("xact")) == 1
    finally:
        h.stop_all()


# --- 4. a dead host's host-local upload queue ---------------------------------------------------------
def test_a_dead_host_s_upload_queue_is_re_driven_from_download_on_a_live_host(tmp_path: Path) -> None:
    """``SHARED_CACHE=false``: the victim (on host ``ghost-…``) downloads, its upload lands on
    ``xact.upload.host.ghost-…``, and the host dies before consuming it (its main process is stopped,
    then the whole worker killed). The upload is re-driven from ``download`` on a live host."""
    # A heartbeat that outlives the 4 s download, so the host counts as gone only after its upload
    # reached its queue (a stopped main process sends no heartbeat).
    env = {
        **FAST_REAPER,
        "SHARED_CACHE": "false",
        "CACHE_DIR": str(tmp_path / "cache"),
        "WORKER_HEARTBEAT_SECONDS": "3",
    }
    h = Harness(tmp_path, extra_env=env)
    try:
        start_base(h)
        line, media_id, url = xact_event("GHOST-1")
        h.sim("POST", "/_sim/faults", {"rule": {"path_prefix": url[len("https:/") :], "delay_seconds": 4}})
        ghost = f"ghost-{uuid.uuid4().hex[:6]}"
        node = f"victim@{ghost}"
        h.start_worker_process("victim", "xact.download", concurrency=1, node=node)
        victim = h.procs["victim"]
        wait_for(h, lambda: node in live_nodes(h), 60, "the victim worker")

        assert h.publish_lines("xact", [line]) == 1
        wait_for(h, lambda: any(r["worker"] == node for r in running(h).values()), 60, "the download")
        os.kill(victim.pid, signal.SIGSTOP)  # the host's consumer stops; its pool child finishes
        host_queue = f"xact.upload.host.{ghost}"
        wait_for(
            h,
            lambda: h.redis.llen(host_queue) == 1 or h.counters("xact").get("chains_redriven", 0),
            30,
            f"the upload on {host_queue}",
        )
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(30)

        h.start_worker_process("survivor", "xact.download,xact.upload,xact.write")
        wait_for(h, lambda: h.redis.llen(host_queue) == 0, 120, f"{host_queue} re-driven")
        h.wait_idle(timeout=120)

        assert h.counters("xact").get("chains_redriven", 0) >= 1
        assert_exactly_once(h, [media_id], {Table.XACT_EVENTS: [json.loads(line)["traceId"]]})
        assert stored_file(h, media_id).read_bytes() == expected_bytes(url[len("https://") :])
        assert len(h.lake_files("xact")) == 1
    finally:
        h.stop_all()
