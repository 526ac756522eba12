"""The ``--domain`` options accept every registered domain, plug-ins (``DOMAIN_PLUGINS``) included,
and refuse an unknown one with a clear message (they used to list the built-in domains only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def own_broker_db() -> int:
    return 12


def _pipeline(redis_url: str, *args: str, plugins: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": redis_url, "DOMAIN_PLUGINS": plugins}
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _url(client: redis.Redis) -> str:
    kw = client.connection_pool.connection_kwargs
    return f"redis://{kw['host']}:{kw['port']}/{kw['db']}"


def test_a_plug_in_domain_is_accepted(own_broker: redis.Redis) -> None:
    out = _pipeline(
        _url(own_broker), "dlq", "list", "--domain", "plugin", "--json", plugins="tests.plugin_domain"
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) is not None


def test_an_unknown_domain_is_refused_by_name(own_broker: redis.Redis) -> None:
    out = _pipeline(_url(own_broker), "dlq", "list", "--domain", "plugin")  # no DOMAIN_PLUGINS
    assert out.returncode == 2
    assert "'plugin' is not a registered domain" in out.stderr
    assert "xact" in out.stderr and "DOMAIN_PLUGINS" in out.stderr
