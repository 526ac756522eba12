"""The short chaos run (issue 8 item 6): ``scripts/chaos.py`` with 300 events and one SIGKILL of
each kind (dispatcher, whole worker, pool child, Beat leader, maintenance worker during a flush,
``redis-server``, Kafka), on a private Redis and a private Kafka, with short recovery timers.

It passes only when the audit finds every expected row exactly once in every table, every
expected lake file with its bytes and no other, exactly the expected dead letters and every
poison record on its Kafka DLQ, and the pipeline went idle. ``make chaos`` is the full run
(2,000 events, two kills of each kind, default timers).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("dispatcher", "worker", "pool-child", "beat-leader", "maintenance-in-flush", "redis", "kafka")


def test_short_chaos_run__one_kill_of_each_kind__nothing_lost_or_duplicated(tmp_path: Path) -> None:
    work = tmp_path / "chaos"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "chaos.py"), "--seed", "11", "--events", "300",
         "--kills-each", "1", "--gap", "3", "8", "--fast", "--idle-timeout", "150",
         "--workdir", str(work), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=330, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, (
        f"chaos run failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    )
    figures = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith('{"seed"')))
    assert set(figures["kills_per_kind"]) == set(KINDS)
    assert all(n == 1 for n in figures["kills_per_kind"].values())
    audit = figures["audit"]
    assert audit["lost"] == audit["duplicated"] == audit["unexpected"] == 0
    assert sum(t["rows"] for t in audit["tables"].values()) > 300
    assert figures["time_to_idle_seconds"] is not None
    assert not any(re.search(r"no (leader|flush)", line) for line in figures["kill_log"]), figures["kill_log"]
