"""Every Redis key the pipeline writes, spelled once.

All keys live under ``pipeline:`` so an operator can list, size or clear the pipeline's state
with one pattern (``pipeline:*``), separate from Celery's own (queues named ``{domain}.{stage}``,
``unacked*``, ``_kombu*``). A key's shape is part of the on-disk contract: a rename orphans the
state already in Redis, so change one only with a migration.
"""

from __future__ import annotations

PREFIX = "pipeline"

#: How long the ``done`` marker of a finished attachment lasts (a re-run within it is a no-op).
DONE_TTL_SECONDS = 30 * 24 * 3600


def url(vault_key: str) -> str:
    """The URL vault entry of one attachment (``vault_key`` = ``{domain}:{media_id}``)."""
    return f"{PREFIX}:url:{vault_key}"


def rows(ref: str) -> str:
    """A row-stash entry (rows waiting for their write task, by reference) as one JSON array:
    the format before issue 9, still read; written now only for an empty row list."""
    return f"{PREFIX}:rows:{ref}"


def row_list(ref: str) -> str:
    """A row-stash entry as a Redis list of staged-format rows (``core.rows.encode_row``): its
    write task moves them to the staging list inside Redis, in one round trip."""
    return f"{PREFIX}:rowlist:{ref}"


def dispatched(domain: str, event_id: str) -> str:
    """The dispatch ledger's entry for one event id."""
    return f"{PREFIX}:dispatched:{domain}:{event_id}"


def counters(domain: str) -> str:
    """The operational counters hash of one domain (or ``pipeline`` for domain-neutral ones)."""
    return f"{PREFIX}:counters:{domain}"


PENDING_INDEX = f"{PREFIX}:pending:index"
"""Sorted set of attachment chains in flight, scored by the time they were (re)started."""


def pending(member: str) -> str:
    """The first payload of one attachment chain in flight (``member`` = ``{domain}:{media_id}``)."""
    return f"{PREFIX}:pending:{member}"


def done(domain: str, media_id: str) -> str:
    """The marker set when an attachment's inventory row was staged: a re-run skips it."""
    return f"{PREFIX}:done:{domain}:{media_id}"


DLQ_PREFIX = f"{PREFIX}:dlq"


def dead_letter(letter_id: str) -> str:
    return f"{DLQ_PREFIX}:letter:{letter_id}"


def dead_letter_index(domain: str) -> str:
    return f"{DLQ_PREFIX}:index:{domain}"


STAGE_PREFIX = f"{PREFIX}:stage"
"""Rows staged for the flusher: ``{STAGE_PREFIX}:{table}`` (see ``writers.staging``)."""

BREAKER_PREFIX = f"{PREFIX}:breaker"
RATELIMIT_PREFIX = f"{PREFIX}:ratelimit"


def project_cache_prefix(domain: str) -> str:
    """Where a domain's API client caches project bodies (claimx: ``pipeline:claimx:project``)."""
    return f"{PREFIX}:{domain}:project"


def flush_lock(table: str) -> str:
    """The lock one flusher of ``table`` holds (``writers.lock``)."""
    return f"{PREFIX}:lock:flush:{table}"


FLUSH_LAST_SUCCESS = f"{PREFIX}:flush:last_success"
"""Hash: table -> time of its last flush without error (read for the flush-age gauge)."""

DISPATCHERS = f"{PREFIX}:dispatchers"
"""The live dispatchers and their intake state (``dispatcher.backpressure``)."""


def dispatcher_durable(member: str) -> str:
    """A dispatcher's durability probe marker (``dispatcher.durability``)."""
    return f"{PREFIX}:dispatcher:durable:{member}"


# --- retries out of the broker, in-flight tracking, worker liveness (docs/reliability.md) ------

SCHEDULE_DUE = f"{PREFIX}:schedule:due"
"""Sorted set: task id -> when its retry (or circuit-open re-queue) is due (``core.schedule``)."""

SCHEDULE_ENTRIES = f"{PREFIX}:schedule:entries"
"""Hash: task id -> the message to publish when due (a Celery signature as JSON)."""

RUNNING = f"{PREFIX}:running"
"""Hash: task id -> the worker running it, since when (``tasks.tracking``; set at task start)."""

PENDING_TASK = f"{PREFIX}:pending:task"
"""Hash: attachment chain (``{domain}:{media_id}``) -> the id of the chain's next message."""

INFLIGHT_INDEX = f"{PREFIX}:inflight:index"
"""Sorted set of single tasks in flight (``enrich``, ``write.rows``) by id, scored by last progress."""


def inflight(task_id: str) -> str:
    """What re-sends one single task in flight (its signature as JSON)."""
    return f"{PREFIX}:inflight:{task_id}"


SUSPECTS = f"{PREFIX}:reaper:suspects"
"""Hash: in-flight member -> when the reaper first found its message nowhere (re-driven on the
next miss)."""

WORKERS = f"{PREFIX}:workers"
"""Hash: worker node name -> what it consumes (JSON); liveness is :func:`worker_alive`."""


def worker_alive(node: str) -> str:
    """A worker's heartbeat key: present (short TTL, refreshed) while the worker lives."""
    return f"{PREFIX}:worker:alive:{node}"


HOST_QUEUES = f"{PREFIX}:host_queues"
"""Set of the host-local upload queues workers have consumed (the reaper drains a dead host's)."""
