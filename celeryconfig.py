"""Celery settings derived from the one settings object (ARCHITECTURE "Reliability design").

Queues and routes come from the registered domains (``domains.registry``: the built-in ones and
the plug-ins ``DOMAIN_PLUGINS`` names); the Beat entries are domain-neutral (the flush and
maintenance tasks serve every registered table). Reliability settings are
chosen against Celery-on-Redis's known failure modes:

* late acks + reject on worker loss: a task whose worker dies is redelivered, never lost;
* prefetch 1: a long download never holds other tasks hostage behind it;
* no ETA messages: retries and re-queues wait in the durable schedule (``tasks.schedule``), so
  the visibility timeout only has to exceed the task time limit (validated in ``Settings``;
  default 20 min), and the reaper (``tasks.reaper``) restores a dead worker's messages sooner;
* a ``rediss://`` broker gets the same TLS options as every other Redis client
  (``core.redis_client``); a password travels in the URL;
* JSON only, results ignored (chains pass values through the message, not a backend).
"""

from __future__ import annotations

from datetime import timedelta

from celery.schedules import crontab
from kombu import Queue

from core.redis_client import broker_ssl_options
from core.settings import get_settings
from domains import registry
from domains.names import MAINTENANCE_QUEUE, queue_name

_settings = get_settings()

broker_url = _settings.redis_url
broker_use_ssl = broker_ssl_options(_settings) or False
broker_connection_retry_on_startup = True
broker_transport_options = {
    "visibility_timeout": _settings.visibility_timeout_seconds,
    "socket_keepalive": True,
    "health_check_interval": 30,
}
result_backend = None
task_ignore_result = True

accept_content = ["json"]
task_serializer = "json"
result_serializer = "json"
event_serializer = "json"

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_time_limit = _settings.task_time_limit_seconds
task_soft_time_limit = _settings.task_time_limit_seconds - 30
# A pool child is replaced after this many tasks (a guard against slow leaks): every replacement
# forks, re-imports lazily and reconnects, which at 1,000 cost a stage worker several per minute.
worker_max_tasks_per_child = 10000
worker_enable_soft_shutdown_on_idle = True
worker_soft_shutdown_timeout = 30.0
worker_cancel_long_running_tasks_on_connection_loss = True

# Task events only where Flower needs them (issue 9, figures in docs/benchmarks.md "End to end"):
# off by default, since Flower enables worker events itself (remote control ``enable_events``)
# while it runs; TASK_EVENTS / TASK_SENT_EVENTS turn them on from start.
worker_send_task_events = _settings.task_events
task_send_sent_event = _settings.task_sent_events

task_queues = [Queue(name) for name in registry.all_queues()]
task_create_missing_queues = True  # host-local upload queues are added at worker start
task_default_queue = MAINTENANCE_QUEUE


def _route(name: str, args, kwargs, options, task=None, **kw):  # Celery router signature
    """``{domain}.{stage}[.what]`` -> queue ``{domain}.{stage}``; ``pipeline.*`` -> maintenance."""
    parts = name.split(".")
    if parts[0] == "pipeline":
        return {"queue": MAINTENANCE_QUEUE}
    for domain, spec in registry.specs().items():
        if parts[0] == domain.value and len(parts) >= 2 and parts[1] in {s.value for s in spec.stages}:
            return {"queue": queue_name(domain, parts[1])}
    return None


task_routes = (_route,)

beat_scheduler = "tasks.beat:LeaderScheduler"  # several Beats may run; one leads (tasks/beat.py)
beat_schedule = {
    "flush-staged-rows": {
        "task": "pipeline.flush",
        "schedule": timedelta(seconds=_settings.flush_interval_seconds),
        "options": {"queue": MAINTENANCE_QUEUE, "expires": max(_settings.flush_interval_seconds * 2, 10)},
    },
    "sweep-lost-chains": {
        "task": "pipeline.sweep",
        "schedule": timedelta(seconds=_settings.sweep_interval_seconds),
        "options": {"queue": MAINTENANCE_QUEUE, "expires": max(_settings.sweep_interval_seconds, 10)},
    },
    "maintain-tables": {
        "task": "pipeline.maintain",
        "schedule": crontab(hour=3, minute=17),
        "options": {"queue": MAINTENANCE_QUEUE},
    },
}
