"""``{domain}.download``: fetch one attachment into the local cache (SPEC §3.4, DECISIONS).

Idempotent on ``media_id``: an attachment whose inventory row was already staged is skipped.
When the cache directory is not shared by all hosts (``SHARED_CACHE=false``), the chain's upload
is routed to this host's own upload queue, which this worker also serves.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from celery.exceptions import Ignore

from core.download import DownloadPolicy, download_to_file
from core.errors import PermanentError, PipelineError
from core.observability import Metric
from core.security.redact import sanitize_url
from domains.attachments import AttachmentJob
from domains.names import Domain, Stage
from tasks.application import app
from tasks.base import StageTask, register_attachment_stage, utcnow
from tasks.outcomes import DONE_PREFIX, record_attachment_failure
from tasks.runtime import Runtime

log = logging.getLogger("pipeline.tasks.download")


def host_upload_queue(domain: Domain | str, hostname: str) -> str:
    return f"{Domain(domain).value}.{Stage.UPLOAD.value}.host.{hostname}"


def cache_path(rt: Runtime, job: AttachmentJob, run_id: str) -> Path:
    """``{cache_dir}/{domain}/{media_id}/{run_id}/{file name}`` (the name is already sanitised).

    ``run_id`` (the download task's id, stable across its retries) keeps two chains of one media
    id - a re-sent event downloading while the first is in flight - from sharing one cached file.
    """
    return rt.settings.cache_dir / job.domain.value / job.media_id / run_id / Path(job.blob_path).name


def fetch(rt: Runtime, job: AttachmentJob, run_id: str = "manual") -> AttachmentJob:
    """Download the job's file; refresh an expired claimx link (at most ``url_refresh_max``)."""
    url = rt.vault.get(job.vault_key())
    if url is None:
        raise PermanentError(f"No download URL on record for media {job.media_id}")
    policy = DownloadPolicy.from_settings(rt.settings, check_presigned_expiry=job.check_expiry)
    expected_ext = job.file_type.lower() if job.file_type and job.file_type != "UNKNOWN" else None
    dest = cache_path(rt, job, run_id)
    while True:
        try:
            result = download_to_file(rt.http, url, dest, policy, expected_extension=expected_ext)
            break
        except PipelineError as err:
            if not _refreshable(job, err) or job.refresh_count >= rt.settings.url_refresh_max:
                raise
            url = _refresh_url(rt, job)
            job = job.model_copy(
                update={"refresh_count": job.refresh_count + 1, "url_display": sanitize_url(url)}
            )
            rt.counters.incr(job.domain, Metric.URL_REFRESHED)
    return job.model_copy(
        update={
            "local_path": str(result.path),
            "bytes_downloaded": result.bytes_downloaded,
            "content_type": result.content_type,
            "sha256": result.sha256,
            "downloaded_at": utcnow(),
        }
    )


def _refreshable(job: AttachmentJob, err: PipelineError) -> bool:
    """claimx presigned links that expired or were refused can be re-issued by the API."""
    if job.domain is not Domain.CLAIMX:
        return False
    text = err.message.lower()
    return err.http_status == 403 or "expired" in text or "forbidden" in text or "access denied" in text


def _refresh_url(rt: Runtime, job: AttachmentJob) -> str:
    from domains.claimx.media import refresh_media_url
    from tasks.enrich import claimx_client

    project_id = job.context.get("project_id") or ""
    url = refresh_media_url(claimx_client(rt), project_id, job.media_id)
    rt.vault.put(job.vault_key(), url)
    return url


def _route_upload_to_this_host(task: StageTask, domain: Domain) -> None:
    chain = task.request.chain
    if task.runtime.settings.shared_cache or not chain:
        return
    options = chain[-1].setdefault("options", {})
    node = task.request.hostname or task.runtime.hostname
    options["queue"] = host_upload_queue(domain, node.split("@", 1)[-1])


def _run(task: StageTask, domain: Domain, payload: dict[str, Any]) -> dict[str, Any]:
    job = AttachmentJob.model_validate(payload)
    rt = task.runtime
    if rt.redis.exists(f"{DONE_PREFIX}:{domain.value}:{job.media_id}"):
        rt.counters.incr(domain, Metric.DOWNLOAD_SKIPPED_DONE)
        rt.pending.done(job.vault_key())  # a repeat of finished work: nothing is in flight
        raise Ignore()
    try:
        done = fetch(rt, job, task.request.id or "manual")
    except Exception as exc:  # noqa: BLE001 - classified and routed by handle_failure
        task.handle_failure(exc, payload, key=job.media_id, on_dead=record_attachment_failure)
    rt.counters.incr_many(domain, {Metric.DOWNLOADED: 1, Metric.BYTES_DOWNLOADED: done.bytes_downloaded or 0})
    _route_upload_to_this_host(task, domain)
    return done.model_dump(mode="json")


register_attachment_stage(app, Stage.DOWNLOAD, _run)
