"""The Celery app. ``celery -A tasks worker -Q claimx.download`` finds it as ``tasks.app``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery, Task
from celery.signals import celeryd_after_setup, worker_process_init

from core.settings import get_settings
from domains import registry
from domains.names import Domain, Stage, host_upload_queue, queue_name, task_name
from tasks import kombu_clients as _kombu_clients  # noqa: F401 - one Redis client per channel
from tasks import kombu_fixes as _kombu_fixes  # noqa: F401 - workers survive a broker restart
from tasks import monitoring as _monitoring  # noqa: F401 - connects the metrics/health/log signals
from tasks import tracking as _tracking  # noqa: F401 - who holds what; heartbeat, retry release, reaper
from tasks.runtime import reset_runtime

app = Celery("claims_pipeline")
app.config_from_object("celeryconfig")


def register_stage_task(
    fn: Callable[..., Any],
    *,
    base: type[Task],
    domain: Domain,
    stage: Stage,
    what: str = "",
    doc: str,
    fold_start: bool = False,
) -> None:
    """Register ``fn`` (bound: it takes the task first) as ``task_name(domain, stage, what)``,
    with ``domain``/``stage`` set on the task class for its base's hooks and metrics."""
    fn.__name__ = f"{domain.value}_{stage.value}{'_' + what if what else ''}"
    fn.__doc__ = doc
    app.task(
        base=base,
        bind=True,
        name=task_name(domain, stage, what),
        domain=domain.value,
        stage=stage.value,
        fold_start=fold_start,
    )(fn)


@worker_process_init.connect
def _fresh_resources(**_: object) -> None:
    """Each forked child builds its own Redis/HTTP clients."""
    reset_runtime()


@celeryd_after_setup.connect
def _add_host_upload_queues(sender: str, instance, **_: object) -> None:
    """A worker that downloads also uploads what it downloaded when the cache is host-local."""
    if get_settings().shared_cache:
        return
    selected = instance.app.amqp.queues.consume_from
    consumer_queues = {q.name for q in selected.values()} if selected else set(instance.app.amqp.queues)
    hostname = sender.split("@", 1)[-1]
    for domain, spec in registry.specs().items():
        if Stage.DOWNLOAD in spec.stages and queue_name(domain, Stage.DOWNLOAD) in consumer_queues:
            instance.app.amqp.queues.select_add(host_upload_queue(domain, hostname))
