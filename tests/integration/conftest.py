"""Fixtures shared by the integration tests (real Redis of the local stack)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from core.settings import load_settings


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


def point_app_at(url: str) -> None:
    """Make the Celery app publish to ``url`` (a pool keeps its first broker, so drop it)."""
    from tasks import app

    app.conf.broker_url = url
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture()
def own_broker_db() -> int:
    """The Redis db ``own_broker`` uses; a module overrides it to keep its own."""
    return 11


@pytest.fixture()
def own_broker(own_broker_db: int) -> Iterator[redis.Redis]:
    """A Redis db of the test, emptied, and made the app's broker for the test's duration."""
    from tasks import app

    url = f"redis://127.0.0.1:6379/{own_broker_db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    original = app.conf.broker_url
    point_app_at(url)
    yield client
    point_app_at(original)


@pytest.fixture()
def runtime_on(own_broker: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """``own_broker``, made the worker runtime's Redis too (``REDIS_URL``; settings and runtime
    rebuilt before and after the test)."""
    from core.settings import get_settings
    from tasks.runtime import reset_runtime

    kwargs = own_broker.connection_pool.connection_kwargs
    monkeypatch.setenv("REDIS_URL", f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}")
    get_settings.cache_clear()
    reset_runtime()
    yield own_broker
    get_settings.cache_clear()
    reset_runtime()
