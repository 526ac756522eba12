"""The Celery app. ``celery -A tasks worker -Q claimx.download`` finds it as ``tasks.app``."""

from __future__ import annotations

from celery import Celery
from celery.signals import celeryd_after_setup, worker_process_init

from domains.names import DOMAIN_STAGES, Stage, queue_name

app = Celery("claims_pipeline")
app.config_from_object("celeryconfig")

TASK_MODULES = ["tasks.download", "tasks.upload", "tasks.write", "tasks.enrich", "tasks.batcher"]


@worker_process_init.connect
def _fresh_resources(**_: object) -> None:
    """Each forked child builds its own Redis/HTTP clients."""
    from tasks.runtime import reset_runtime

    reset_runtime()


@celeryd_after_setup.connect
def _add_host_upload_queues(sender: str, instance, **_: object) -> None:  # noqa: ANN001
    """A worker that downloads also uploads what it downloaded when the cache is host-local."""
    from core.settings import get_settings
    from tasks.download import host_upload_queue

    if get_settings().shared_cache:
        return
    selected = instance.app.amqp.queues.consume_from
    consumer_queues = {q.name for q in selected.values()} if selected else set(instance.app.amqp.queues)
    hostname = sender.split("@", 1)[-1]
    for domain, stages in DOMAIN_STAGES.items():
        if Stage.DOWNLOAD in stages and queue_name(domain, Stage.DOWNLOAD) in consumer_queues:
            instance.app.amqp.queues.select_add(host_upload_queue(domain, hostname))
