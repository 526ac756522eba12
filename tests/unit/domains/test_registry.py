"""The domain set is open: names, registration, and everything that derives from the registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from domains import registry
from domains.canvas import ATTACHMENT_CHAIN
from domains.names import Domain, OpenNames, Stage, Table, plug

ROOT = Path(__file__).resolve().parents[3]


class _Kind(OpenNames):
    ONE = "one"


def test_open_names__a_plugged_name_is_a_member_and_an_unknown_one_is_refused() -> None:
    with pytest.raises(ValueError):
        _Kind("two")
    plug(_Kind, "two")
    two = _Kind("two")
    assert two is _Kind("two") and two == "two" and two.value == "two" and f"{two}" == "two"
    assert list(_Kind) == [_Kind.ONE]  # iteration stays the declared members


@pytest.mark.parametrize("bad", ["Two", "two-three", "", "3d"])
def test_open_names__only_lower_case_identifiers_plug_in(bad: str) -> None:
    with pytest.raises(ValueError):
        plug(_Kind, bad)


def test_builtin_specs__declare_their_shape_once() -> None:
    specs = registry.specs()
    assert list(specs)[:2] == [Domain.XACT, Domain.CLAIMX]
    assert specs[Domain.XACT].stages == (Stage.DOWNLOAD, Stage.UPLOAD, Stage.WRITE)
    assert specs[Domain.CLAIMX].stages == (Stage.ENRICH, Stage.DOWNLOAD, Stage.UPLOAD, Stage.WRITE)
    assert [s for s, _ in ATTACHMENT_CHAIN] == [Stage.DOWNLOAD, Stage.UPLOAD, Stage.WRITE]
    assert set(registry.registered_tables()) == set(Table)  # built-ins: exactly the declared tables
    assert registry.domain_of_table(Table.CLAIMX_TASKS) is Domain.CLAIMX


def test_a_table_declared_by_two_domains_is_refused() -> None:
    claimx = registry.spec_of(Domain.CLAIMX)
    thief = replace(
        claimx, domain="thief", event_table=Table.XACT_EVENTS, tables=registry.spec_of("xact").tables
    )
    with pytest.raises(ValueError, match="already declared"):
        registry.register(thief)


_PROBE = """
import json
import celeryconfig, tasks
from core.settings import get_settings
from domains import registry
from writers.tables import TABLES
s = get_settings()
print(json.dumps({
    "queues": [q.name for q in celeryconfig.task_queues],
    "route": celeryconfig._route("plugin.write.inventory", (), {}, {}),
    "tasks": sorted(n for n in tasks.app.tasks if n.startswith("plugin.")),
    "tables": [str(t) for t in TABLES],
    "topics": [s.topic_for("plugin"), s.dlq_topic_for("plugin")],
}))
"""


def test_a_plugin_named_in_the_environment_derives_queues_routes_tasks_tables_topics() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DOMAIN_PLUGINS": "tests.plugin_domain"}
    env.pop("PLUGIN_EVENTS_TOPIC", None)
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert [q for q in seen["queues"] if q.startswith("plugin.")] == [
        "plugin.enrich",
        "plugin.download",
        "plugin.upload",
        "plugin.write",
    ]
    assert seen["route"] == {"queue": "plugin.write"}
    assert seen["tasks"] == [
        "plugin.download",
        "plugin.enrich",
        "plugin.upload",
        "plugin.write.inventory",
        "plugin.write.rows",
    ]
    assert seen["tables"][-1] == "plugin_items"
    assert seen["topics"] == ["plugin.events.raw", "plugin.events.dlq"]
