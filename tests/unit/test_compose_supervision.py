"""docker-compose.yml supervises every process (issue 8 item 5: workers reconnect by themselves,
deployments still restart whatever exits)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read docker-compose.yml")

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
#: Services that run once and exit when done; everything else runs until stopped.
ONE_SHOTS = {"kafka-init"}


def _services() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def test_compose__every_long_running_service_is_restarted_when_it_exits() -> None:
    unsupervised = {
        name: service.get("restart")
        for name, service in _services().items()
        if name not in ONE_SHOTS
        and not (
            service.get("restart") in ("always", "unless-stopped")
            or str(service.get("restart", "")).startswith("on-failure")
        )
    }
    assert not unsupervised, f"services without a restart policy: {unsupervised}"


def test_compose__one_shot_services_are_retried_on_failure_only() -> None:
    for name in ONE_SHOTS & set(_services()):
        assert str(_services()[name].get("restart", "")).startswith("on-failure"), name
