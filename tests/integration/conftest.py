"""Fixtures shared by the integration tests (real Redis of the local stack)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from pipeline.settings import load_settings


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(load_settings().redis_url)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("Redis is not reachable at REDIS_URL (start it with scripts/stack.sh start)")
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A key namespace of this test only; every key under it is deleted afterwards."""
    name = f"test:writers:{uuid.uuid4().hex}"
    yield name
    keys = list(redis_client.scan_iter(f"{name}:*"))
    if keys:
        redis_client.delete(*keys)
