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

from core import keys
from core.cache import cache_file
from core.download import DownloadPolicy, download_to_file
from core.errors import PermanentError, PipelineError
from core.observability import Metric
from core.security.redact import sanitize_url
from core.state import UrlVault
from domains.attachments import AttachmentJob
from domains.names import Domain, Stage, host_upload_queue
from domains.registry import spec_of
from tasks.base import StageTask, utcnow
from tasks.outcomes import register_attachment_stage
from tasks.runtime import Runtime
from tasks.tracking import start_into

log = logging.getLogger("pipeline.tasks.download")


def cache_path(rt: Runtime, job: AttachmentJob, run_id: str) -> Path:
    """The run's private cache file (:func:`core.cache.cache_file`): named from hashes of the media
    id and ``run_id`` (the download task's id, stable across its retries), never from the
    attachment's name, so two chains of one media id never share a file."""
    return cache_file(rt.settings.cache_dir, job.domain.value, job.media_id, run_id)


def fetch(
    rt: Runtime, job: AttachmentJob, run_id: str = "manual", *, url: str | None = None
) -> AttachmentJob:
    """Download the job's file; a link the domain can re-issue (its spec's ``refreshable`` /
    ``refresh_url``, e.g. an expired claimx link) is refreshed at most ``url_refresh_max`` times.
    ``url``: the vault's entry when the caller has read it already (else it is read here)."""
    if url is None:
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
            spec = spec_of(job.domain)
            if (
                spec.refresh_url is None
                or not spec.refreshable(job, err)
                or job.refresh_count >= rt.settings.url_refresh_max
            ):
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


def _refresh_url(rt: Runtime, job: AttachmentJob) -> str:
    refresh = spec_of(job.domain).refresh_url
    if refresh is None:  # checked by the caller; a spec changed under a running worker
        raise PermanentError(f"domain {job.domain} cannot refresh a download link")
    url = refresh(rt.context(job.domain), job)
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
    # The run's start record, the done marker and the vault's URL in one round trip.
    pipe = start_into(rt.redis.pipeline(transaction=False))
    pipe.exists(keys.done(job.domain.value, job.media_id))
    pipe.get(UrlVault.redis_key(job.vault_key()))
    already, raw_url = pipe.execute()[-2:]
    if already:
        rt.counters.incr(domain, Metric.DOWNLOAD_SKIPPED_DONE)
        rt.pending.done(job.vault_key())  # a repeat of finished work: nothing is in flight
        raise Ignore()
    url = raw_url.decode() if isinstance(raw_url, bytes) else raw_url
    done = fetch(rt, job, task.request.id or "manual", url=url)  # failures: AttachmentStageTask
    rt.counters.later(domain, {Metric.DOWNLOADED: 1, Metric.BYTES_DOWNLOADED: done.bytes_downloaded or 0})
    _route_upload_to_this_host(task, domain)
    return done.model_dump(mode="json")


register_attachment_stage(Stage.DOWNLOAD, _run, fold_start=True)
