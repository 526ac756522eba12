"""A publish that fails leaves no in-flight entry of its own behind for the reaper to re-send.

``enqueue_plans`` registers every chain and single task as in flight, then publishes. When the
publish fails, the caller sends the plans again under new ids (the dispatcher: the whole batch on a
broker error, one by one on a data error, dead-lettering the plan that fails), so the entries of
the failed attempt must go, or the reaper would re-send work that was sent again or dead-lettered.
The broker refuses the publish here for real: a Redis ACL user without ``LPUSH``/``RPUSH``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from kombu.exceptions import OperationalError

from core.security.urls import UrlPolicy
from core.state import PendingAttachments, PendingTasks, RowStash, UrlVault
from dispatcher.isolation import enqueue_isolated
from domains.canvas import EventPlan
from domains.names import Domain
from domains.registry import all_queues
from domains.xact.canvas import parse, plan_event
from tasks import app
from tasks.canvas import enqueue_plans
from tests.integration.conftest import point_app_at
from tests.samples import SAMPLES

pytestmark = pytest.mark.integration


def _good_plan() -> EventPlan:
    line = (SAMPLES / "xact_events.jsonl").read_bytes().splitlines()[0]
    policy = UrlPolicy(allowed_hosts=("xn-exportreceiver.s3.example.com",))
    plan = plan_event(parse(line, None), policy, datetime.now(UTC))
    assert plan.attachments and plan.rows  # a chain and a write.rows task
    return plan


def _unpublishable_plan() -> EventPlan:
    return EventPlan(domain=Domain.XACT, event_id="bad-1", enrich=[{"value": object()}])


def _queued_ids(client: redis.Redis) -> set[str]:
    return {json.loads(m)["headers"]["id"] for q in all_queues() for m in client.lrange(q, 0, -1)}


@pytest.fixture()
def refusing_broker(own_broker: redis.Redis, own_broker_db: int) -> Iterator[redis.Redis]:
    """The app publishes as a Redis user that may not push to a list; ``own_broker`` stays whole."""
    user = "no-push-test"
    own_broker.acl_setuser(
        user,
        enabled=True,
        passwords=["+no-push-pw"],
        commands=["+@all", "-lpush", "-rpush"],
        keys=["*"],
        channels=["*"],
        reset=True,
    )
    where = own_broker.connection_pool.connection_kwargs
    point_app_at(f"redis://{user}:no-push-pw@{where['host']}:{where['port']}/{own_broker_db}")
    try:
        yield own_broker
    finally:
        own_broker.acl_deluser(user)


def test_publish_refused_by_the_broker__the_attempts_in_flight_entries_are_removed(
    refusing_broker: redis.Redis,
) -> None:
    client = refusing_broker
    pending = PendingAttachments(client)
    plan = _good_plan()
    with pytest.raises(OperationalError, match="no permissions"):
        enqueue_plans(app, [plan], UrlVault(client), RowStash(client), pending)
    assert _queued_ids(client) == set()  # nothing was published
    assert pending.count() == 0, "a chain that was never published is left for the reaper"
    assert PendingTasks(client).count() == 0, "a task that was never published is left for the reaper"


def test_batch_with_one_unserializable_plan__only_the_published_work_is_in_flight(
    own_broker: redis.Redis,
) -> None:
    client = own_broker
    pending = PendingAttachments(client)
    good = _good_plan()
    failed: list[str] = []

    def _failed(plan: EventPlan, exc: Exception) -> None:  # the dispatcher dead-letters it
        failed.append(plan.event_id)

    sent, _signatures = enqueue_isolated(
        lambda batch: enqueue_plans(app, batch, UrlVault(client), RowStash(client), pending),
        [good, _unpublishable_plan()],
        _failed,
    )
    assert [p.event_id for p in sent] == [good.event_id] and failed == ["bad-1"]
    tracked_tasks = {m.decode() for m in client.zrange(PendingTasks.INDEX, 0, -1)}
    tracked_chains = set(pending.task_ids([job.vault_key() for job, _u in good.attachments]))
    assert len(tracked_tasks) == len(good.rows) and len(tracked_chains) == len(good.attachments)
    # Every entry is a message that was published in the successful attempt.
    assert tracked_tasks | tracked_chains <= _queued_ids(client)
