"""``{domain}.write.*``: stage rows durably for the Beat-scheduled batcher (no Delta here).

* ``{domain}.write.rows(table, rows_ref, count)``: event rows, entity rows, failed-attachment rows.
* ``{domain}.write.inventory(job)``: the end of an attachment chain: the domain's inventory row
  (and recovered row, for a replay), then the ``done`` marker that makes a re-run a no-op.
"""

from __future__ import annotations

from typing import Any

from core import keys, metrics
from core.errors import PermanentError
from core.observability import Metric, staged
from core.state import RowStash, UrlVault
from domains import registry
from domains.attachments import AttachmentJob
from domains.canvas import WRITE_INVENTORY, WRITE_ROWS
from domains.names import Domain, Stage, Table, task_name
from tasks.application import app
from tasks.base import StageTask, utcnow
from tasks.outcomes import mark_done, register_attachment_stage
from tasks.tracking import end_into, finish_into, start_into
from writers.staging import stage_key

# KEYS: the stash entry (a list of staged-format rows), the table's staging list, the domain's
# counters. ARGV: the staged-rows counter field, the already-staged counter field.
# Moves the rows (RPUSH, 1,000 per call: Lua's unpack has a stack limit), deletes the entry and
# counts; returns the number of rows staged, 0 when the entry is gone (staged by an earlier run).
_STAGE_FROM_STASH = """
local n = redis.call('LLEN', KEYS[1])
if n == 0 then
  redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
  return 0
end
for i = 0, n - 1, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(redis.call('LRANGE', KEYS[1], i, i + 999)))
end
redis.call('DEL', KEYS[1])
redis.call('HINCRBY', KEYS[3], ARGV[1], n)
return n
"""


class RowsTask(StageTask):
    """``write.rows``: a dead letter holds the arguments, keyed by the stash reference."""

    abstract = True

    def letter(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[dict[str, Any], str]:
        return {"args": list(args)}, str(args[1]) if len(args) > 1 else ""


def _stage_rows(task: StageTask, domain: Domain, table_name: str, rows_ref: str, count: int) -> int:
    rt = task.runtime
    table = Table(table_name)
    if table not in registry.spec_of(domain).table_names():
        raise PermanentError(f"Table {table_name} does not belong to domain {domain.value}")
    if RowStash.is_row_list(rows_ref):
        # ONE round trip, one MULTI: the rows move from the stash to the staging list inside Redis
        # (a script), the entry is dropped, the count taken and the run's end records written,
        # together or not at all (issue 9: was two round trips and a JSON decode and re-encode).
        pipe = rt.redis.pipeline(transaction=True)
        pipe.eval(
            _STAGE_FROM_STASH,
            3,
            rows_ref,
            stage_key(rt.stager.prefix, table),
            keys.counters(domain.value),
            staged(table_name),
            Metric.WRITE_ROWS_ALREADY_STAGED.value,
        )
        moved = int(finish_into(pipe).execute()[0])
        if moved:
            metrics.count(domain.value, staged(table_name), moved)
        else:
            metrics.count(domain.value, Metric.WRITE_ROWS_ALREADY_STAGED.value, 1)
        return moved
    # An entry of the older format (one JSON array): the run's start record and the entry in one
    # round trip, then the staging transaction.
    raw = start_into(rt.redis.pipeline(transaction=False)).get(rows_ref).execute()[-1]
    rows = RowStash.decode(raw)
    if rows is None:  # already staged by an earlier delivery of this task
        rt.counters.incr(domain, Metric.WRITE_ROWS_ALREADY_STAGED)
        return 0
    # One MULTI/EXEC (one round trip): the rows are staged, their stash entry dropped and the
    # count taken together or not at all, so a redelivery either finds the stash or nothing to do.
    pipe = rt.redis.pipeline(transaction=True)
    rt.stager.stage_in(pipe, table, rows)
    pipe.delete(rows_ref)
    rt.counters.incr_many(domain, {staged(table_name): len(rows)}, pipe=pipe)
    end_into(pipe).execute()  # the run's end records land with the rows (one round trip fewer)
    return len(rows)


def _write_inventory(task: StageTask, domain: Domain, payload: dict[str, Any]) -> None:
    job = AttachmentJob.model_validate(payload)
    rt = task.runtime
    spec = registry.spec_of(domain)
    if spec.inventory_row is None:  # registered only for domains with attachments
        raise PermanentError(f"domain {domain} has no attachments")
    now = utcnow()
    # The run's start record and the vault's URL in one round trip.
    raw_url = (
        start_into(rt.redis.pipeline(transaction=False))
        .get(UrlVault.redis_key(job.vault_key()))
        .execute()[-1]
    )
    table, row = spec.inventory_row(job, UrlVault.decode(raw_url), now)
    recovered = spec.recovered_row(job, now)
    # One MULTI/EXEC (one round trip instead of six): the rows, the done marker, the end of the
    # chain's records and the count land together or not at all; a redelivery redoes all of it.
    pipe = rt.redis.pipeline(transaction=True)
    rt.stager.stage_in(pipe, table, [row])
    if recovered is not None:
        rt.stager.stage_in(pipe, recovered[0], [recovered[1]])
    mark_done(rt, job, pipe=pipe)
    pipe.delete(UrlVault.redis_key(job.vault_key()))
    rt.pending.done(job.vault_key(), pipe=pipe)
    rt.counters.incr_many(domain, {Metric.INVENTORY_STAGED: 1}, pipe=pipe)
    end_into(pipe).execute()  # the run's end records land with the rows (one round trip fewer)


def _register_rows(domain: Domain) -> None:
    @app.task(
        base=RowsTask,
        bind=True,
        name=task_name(domain, Stage.WRITE, WRITE_ROWS),
        domain=domain.value,
        stage=Stage.WRITE.value,
        fold_start=True,
    )
    def write_rows(self: StageTask, table: str, rows_ref: str, count: int) -> int:
        """Stage the ``count`` rows held in the stash under ``rows_ref`` for ``table``."""
        return _stage_rows(self, domain, table, rows_ref, count)


for _domain in registry.domains():
    _register_rows(_domain)
register_attachment_stage(Stage.WRITE, _write_inventory, WRITE_INVENTORY, fold_start=True)
