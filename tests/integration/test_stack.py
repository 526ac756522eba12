"""The local stack (scripts/stack.sh start) is up and configured as the pipeline needs it.

Assumes the stack is running; `make test` starts it. Ports follow the same variables as stack.sh.
"""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
from confluent_kafka.admin import AdminClient

from core.settings import load_settings
from domains.names import Domain, dlq_topic, raw_topic

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPECTED_PARTITIONS = {
    **{raw_topic(domain): 6 for domain in Domain},
    **{dlq_topic(domain): 3 for domain in Domain},
}


def _azurite_port() -> int:
    return int(os.environ.get("AZURITE_PORT", "10000"))


def test_redis__answers_ping_with_append_only_persistence() -> None:
    client = redis.Redis.from_url(load_settings().redis_url, socket_timeout=5)
    try:
        assert client.ping() is True
        assert client.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        client.close()


def test_kafka__pipeline_topics_exist_with_their_partition_counts() -> None:
    admin = AdminClient(load_settings().kafka_config())
    topics = admin.list_topics(timeout=15).topics
    found = {name: len(topics[name].partitions) for name in EXPECTED_PARTITIONS if name in topics}
    assert found == EXPECTED_PARTITIONS


def test_kafka__does_not_auto_create_topics() -> None:
    """A metadata request for an unknown topic must not create it (auto.create.topics.enable=false)."""
    admin = AdminClient(load_settings().kafka_config())
    name = "stack-test.must-not-exist"
    admin.list_topics(topic=name, timeout=15)
    assert name not in admin.list_topics(timeout=15).topics


def test_azurite__blob_port_accepts_connections_and_answers_as_azurite() -> None:
    with socket.create_connection(("127.0.0.1", _azurite_port()), timeout=5):
        pass
    url = f"http://127.0.0.1:{_azurite_port()}/devstoreaccount1?comp=list"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            server = response.headers.get("Server", "")
    except urllib.error.HTTPError as exc:  # unauthenticated listing: an Azure-style error is fine
        server = exc.headers.get("Server", "")
    assert server.lower().startswith("azurite-blob")


def test_stack_script__status_reports_every_service_up() -> None:
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "stack.sh"), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        env={**os.environ, "STACK_SERVICES": "redis kafka azurite"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    states = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines() if line.strip()}
    assert set(states) == {"redis", "kafka", "azurite"}
    assert set(states.values()) <= {"running", "external"}
