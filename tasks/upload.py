"""``{domain}.upload``: put the cached file into the lake's file store (local dir or OneLake).

Idempotent on the destination path (overwrite). The cached file is deleted after a successful
upload; on a failure it is kept for the retry (SPEC §3.6).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from core.errors import PermanentError
from core.observability import Metric
from domains.attachments import AttachmentJob
from domains.names import Domain, Stage
from tasks.application import app
from tasks.base import StageTask, register_attachment_stage, utcnow
from tasks.outcomes import record_attachment_failure
from tasks.runtime import Runtime


def put(rt: Runtime, job: AttachmentJob) -> AttachmentJob:
    if not job.local_path or not Path(job.local_path).is_file():
        # The cached file is deleted only after a successful put: a redelivered upload (its worker
        # died before the ack) finds the file gone and the blob in place - nothing left to do.
        if rt.files.exists(job.domain, job.blob_path):
            return job.model_copy(
                update={
                    "destination": f"{job.domain.value}/{job.blob_path}",
                    "uploaded_at": utcnow(),
                    "local_path": None,
                }
            )
        raise PermanentError(f"Cached file missing for media {job.media_id}; replay re-downloads it")
    local = Path(job.local_path)
    destination = rt.files.put_file(job.domain, job.blob_path, local)
    local.unlink(missing_ok=True)
    for folder in (local.parent, local.parent.parent):  # the run's folder, then the media's
        with contextlib.suppress(OSError):  # not empty or already gone: nothing to tidy
            folder.rmdir()
    return job.model_copy(update={"destination": destination, "uploaded_at": utcnow(), "local_path": None})


def _run(task: StageTask, domain: Domain, payload: dict[str, Any]) -> dict[str, Any]:
    job = AttachmentJob.model_validate(payload)
    try:
        done = put(task.runtime, job)
    except Exception as exc:  # noqa: BLE001 - classified and routed by handle_failure
        task.handle_failure(exc, payload, key=job.media_id, on_dead=record_attachment_failure)
    task.runtime.counters.incr_many(
        domain, {Metric.UPLOADED: 1, Metric.BYTES_UPLOADED: done.bytes_downloaded or 0}
    )
    return done.model_dump(mode="json")


register_attachment_stage(app, Stage.UPLOAD, _run)
