"""A worker's keeper forgets run records of its own pool processes that are gone (found by
``make chaos``, docs/reliability.md "Chaos run").

Celery terminates a late-acknowledged task's pool process when the broker connection drops
("cannot be acknowledged after a connection loss ... Terminating it instead"), so ``task_postrun``
never removes its ``keys.RUNNING`` record. A record naming a live worker made the reaper treat the
task as running: its unacknowledged message and in-flight entry waited for the record to age past
the task time limit (~16 min) instead of the reaper's 2 minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import redis

from core import keys
from core.settings import load_settings
from tasks.tracking import Keeper

pytestmark = pytest.mark.integration

NODE = "xact-chaos@host"


@pytest.fixture()
def own_broker_db() -> int:
    return 14


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    return proc.pid


def test_keeper_drops_its_own_records_of_gone_pool_processes_only(own_broker: redis.Redis) -> None:
    dead = _dead_pid()
    records = {
        "gone-child": {"worker": NODE, "pid": dead, "at": time.time(), "task": "xact.download"},
        "running-child": {"worker": NODE, "pid": os.getpid(), "at": time.time(), "task": "xact.upload"},
        "other-worker": {"worker": "other@host", "pid": dead, "at": time.time(), "task": "xact.download"},
    }
    for task_id, rec in records.items():
        own_broker.hset(keys.RUNNING, task_id, json.dumps(rec))
    url = own_broker.connection_pool.connection_kwargs
    settings = load_settings(redis_url=f"redis://{url['host']}:{url['port']}/{url['db']}")
    keeper = Keeper(app=None, node=NODE, queues=["xact.download"], settings=settings)

    keeper.drop_dead_runs()

    left = {k.decode() for k in own_broker.hkeys(keys.RUNNING)}
    assert left == {"running-child", "other-worker"}
