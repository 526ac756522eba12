"""docker-compose.yml: valid for the Compose CLI, every queue served, secrets only passed through."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from domains.names import Domain, dlq_topic, raw_topic
from domains.registry import all_queues

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read docker-compose.yml")

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
SECRET_MARKERS = ("TOKEN", "SECRET", "PASSWORD", "CONNECTION_STRING")


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _argv(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _worker_queues(services: dict[str, Any]) -> dict[str, set[str]]:
    """Service name -> queues named by its `celery worker -Q` option."""
    served: dict[str, set[str]] = {}
    for name, service in services.items():
        argv = _argv(service)
        if "worker" not in argv or "-Q" not in argv:
            continue
        served[name] = set(argv[argv.index("-Q") + 1].split(","))
    return served


def _compose_cli_or_skip() -> None:
    try:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no docker CLI on this machine")
    if probe.returncode != 0:
        pytest.skip(f"`docker compose` is not available: {(probe.stderr or probe.stdout).strip()[:200]}")


def test_compose_file__passes_docker_compose_config() -> None:
    """`docker compose config -q` needs no engine, so this runs wherever the Compose plugin exists."""
    _compose_cli_or_skip()
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_compose_file__every_pipeline_queue_is_served_by_a_worker_service() -> None:
    served = set().union(*_worker_queues(_compose()["services"]).values())
    missing = set(all_queues()) - served
    assert not missing, f"queues without a worker service: {sorted(missing)}"


def test_compose_file__workers_serve_no_unknown_queue() -> None:
    """A typo in a -Q list would leave a worker idle; every served queue must be a pipeline queue."""
    served = _worker_queues(_compose()["services"])
    unknown = {
        name: queues - set(all_queues()) for name, queues in served.items() if queues - set(all_queues())
    }
    assert not unknown


def test_compose_file__secrets_are_passed_through_never_hard_coded() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) if "=" in item else (item, None) for item in environment)
        for key, value in environment.items():
            if any(marker in key for marker in SECRET_MARKERS):
                assert value is None, f"{name}: {key} has a value in docker-compose.yml"


def test_compose_file__app_services_share_lake_and_download_cache_volumes() -> None:
    services = _compose()["services"]
    app_services = [name for name, service in services.items() if "build" in service]
    assert {"dispatcher", "beat", "flower"} <= set(app_services)
    for name in app_services:
        service = services[name]
        env = service["environment"]
        assert env["SHARED_CACHE"] == "true" and env["CACHE_DIR"] and env["LAKE_DIR"], name
        if name == "beat":
            continue  # Beat only schedules; it touches neither files nor tables
        mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}
        assert mounts.get(env["LAKE_DIR"]) == "lake", name
        assert mounts.get(env["CACHE_DIR"]) == "download-cache", name


def test_compose_file__kafka_init_creates_the_pipeline_topics() -> None:
    script = " ".join(_argv(_compose()["services"]["kafka-init"]))
    for domain in Domain:
        assert f"{raw_topic(domain)}:6" in script
        assert f"{dlq_topic(domain)}:3" in script
