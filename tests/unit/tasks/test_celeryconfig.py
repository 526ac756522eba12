"""The Celery configuration: routes derive from the names, reliability settings are on."""

from __future__ import annotations

import pytest

import celeryconfig
from core.errors import ConfigError
from core.settings import load_settings
from domains.registry import all_queues
from tasks import app


def _route(name: str) -> str | None:
    route = celeryconfig._route(name, (), {}, {})
    return route["queue"] if route else None


def test_every_registered_task_has_a_route_to_a_declared_queue() -> None:
    names = [n for n, t in app.tasks.items() if t.__module__.startswith("tasks.")]
    assert names, "no tasks registered"
    for name in names:
        assert _route(name) in all_queues(), name


def test_task_names_say_domain_and_stage() -> None:
    names = {n for n in app.tasks if not n.startswith("celery.")}
    assert {
        "xact.download",
        "xact.upload",
        "xact.write.rows",
        "xact.write.inventory",
        "claimx.enrich",
        "claimx.download",
        "claimx.upload",
        "claimx.write.rows",
        "claimx.write.inventory",
        "pipeline.flush",
    } <= names


def test_routes__stage_names_map_to_their_queue() -> None:
    assert _route("claimx.enrich") == "claimx.enrich"
    assert _route("xact.write.inventory") == "xact.write"
    assert _route("pipeline.flush") == "pipeline.maintenance"
    assert _route("somethingelse.task") is None


def test_reliability_settings_guard_against_redis_failure_modes() -> None:
    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.task_ignore_result
    vt = conf.broker_transport_options["visibility_timeout"]
    # Retries wait in the durable schedule (tasks.schedule), so only the time limit bounds it.
    assert conf.task_time_limit < vt <= 1200
    assert conf.task_soft_time_limit < conf.task_time_limit


def test_visibility_timeout_not_above_the_task_time_limit__is_refused_at_start_up() -> None:
    with pytest.raises(ConfigError, match="VISIBILITY_TIMEOUT_SECONDS"):
        load_settings(visibility_timeout_seconds=900, task_time_limit_seconds=900)
    # Retry delays no longer count: they never sit in the broker.
    assert load_settings(
        visibility_timeout_seconds=1000, retry_delays_seconds=[300, 2400]
    ).retry_delays_seconds


def test_beat_schedules_the_batcher_on_the_maintenance_queue() -> None:
    entry = app.conf.beat_schedule["flush-staged-rows"]
    assert entry["task"] == "pipeline.flush" and entry["task"] in app.tasks
    assert entry["options"]["queue"] == "pipeline.maintenance"


def test_beat_schedules_daily_table_maintenance() -> None:
    entry = app.conf.beat_schedule["maintain-tables"]
    assert entry["task"] == "pipeline.maintain" and entry["task"] in app.tasks
    assert entry["options"]["queue"] == "pipeline.maintenance"


def test_beat_schedules_the_lost_chain_sweep() -> None:
    entry = app.conf.beat_schedule["sweep-lost-chains"]
    assert entry["task"] == "pipeline.sweep" and entry["task"] in app.tasks
    assert entry["options"]["queue"] == "pipeline.maintenance"
