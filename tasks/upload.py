"""``{domain}.upload``: put the cached file into the lake's file store (local dir or OneLake).

Idempotent: a blob with the same sha256 already at the path counts as stored; a blob with other
bytes is never overwritten (``writers.files.verified``). The cached file is deleted after a
successful upload; on a failure it is kept for the retry (SPEC §3.6).
"""

from __future__ import annotations

from typing import Any

from core.observability import Metric
from domains.attachments import AttachmentJob
from domains.names import Domain, Stage
from tasks.base import StageTask, utcnow
from tasks.outcomes import register_attachment_stage
from tasks.runtime import Runtime
from writers.files.verified import upload_cached


def put(rt: Runtime, job: AttachmentJob) -> AttachmentJob:
    """Store the cached file (``writers.files.verified``: no-clobber, digest-checked, a colliding
    name gets its own path) and record the path actually used."""
    stored = upload_cached(
        rt.files,
        rt.settings.cache_dir,
        job.domain,
        job.blob_path,
        job.local_path,
        sha256=job.sha256,
        owner=job.vault_key(),
    )
    return job.model_copy(
        update={
            "blob_path": stored.blob_path,
            "destination": stored.destination,
            "uploaded_at": utcnow(),
            "local_path": None,
        }
    )


def _run(task: StageTask, domain: Domain, payload: dict[str, Any]) -> dict[str, Any]:
    job = AttachmentJob.model_validate(payload)
    # Failures: AttachmentStageTask (its dead letter keeps ids and references, never the local path).
    done = put(task.runtime, job)
    task.runtime.counters.later(
        domain, {Metric.UPLOADED: 1, Metric.BYTES_UPLOADED: done.bytes_downloaded or 0}
    )
    return done.model_dump(mode="json")


register_attachment_stage(Stage.UPLOAD, _run)
