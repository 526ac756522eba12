"""Redis with a password and with TLS works for every client the pipeline opens (issue 7 item 13).

Private ``redis-server`` processes on free 127.0.0.1 ports (the shared stack is not touched): one
with ``requirepass``, one TLS-only (``--tls-port``, certificates from a CA made for this test) that
also needs the password. Each is reached by the one factory (``core.redis_client``) through the
worker runtime and the CLI, and by the Celery broker connection of the real app, in a subprocess
with the settings in its environment.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core.redis_client import redis_client
from core.settings import load_settings
from tasks.runtime import Runtime
from tests.tls import make_server_cert

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
]

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-redis-pw"

#: The real Celery app's broker connection: declare a queue, publish, consume (then clean up).
_BROKER_PROBE = """
from tasks.application import app
with app.connection_for_write() as conn:
    conn.ensure_connection(max_retries=2)
    queue = conn.SimpleQueue("test.redis-auth-tls")
    queue.put({"ok": 1})
    message = queue.get(timeout=5)
    message.ack()
    print("broker-ok", message.payload)
    queue.clear()
    queue.close()
"""

_CLI_PROBE = """
from ops.dlq_cli import _store
print("cli-ok", _store().list() == [])
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(tmp: Path, args: list[str], probe: dict[str, object]) -> subprocess.Popen[bytes]:
    tmp.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    client = redis.Redis(**probe, socket_connect_timeout=0.5)  # type: ignore[arg-type]  # - probe holds redis.Redis keywords
    for _ in range(100):
        try:
            client.ping()
            return proc
        except redis.AuthenticationError:
            return proc  # up: it asks for the password
        except (redis.ConnectionError, OSError):
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"redis-server {args} did not start")


@pytest.fixture(scope="module")
def password_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = _free_port()
    proc = _start(
        tmp_path_factory.mktemp("redis-pw"),
        ["--port", str(port), "--requirepass", PASSWORD],
        {"host": "127.0.0.1", "port": port, "password": PASSWORD},
    )
    yield port
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    folder = tmp_path_factory.mktemp("redis-tls")
    certs = make_server_cert(folder / "certs", ["127.0.0.1", "localhost"])
    port = _free_port()
    args = [
        "--port",
        "0",
        "--tls-port",
        str(port),
        "--tls-cert-file",
        str(certs.cert),
        "--tls-key-file",
        str(certs.key),
        "--tls-ca-cert-file",
        str(certs.ca),
        "--tls-auth-clients",
        "no",
        "--requirepass",
        PASSWORD,
    ]
    probe = {
        "host": "127.0.0.1",
        "port": port,
        "password": PASSWORD,
        "ssl": True,
        "ssl_ca_certs": str(certs.ca),
    }
    proc = _start(folder / "data", args, probe)
    yield port, certs.ca
    proc.terminate()
    proc.wait(10)


def _run(code: str, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert PASSWORD not in proc.stdout + proc.stderr  # the password is never printed
    return proc.stdout


def test_password__every_client_authenticates(password_redis: int, tmp_path: Path) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{password_redis}/0"
    settings = load_settings(redis_url=url, cache_dir=tmp_path / "cache")
    assert redis_client(settings).ping()
    rt = Runtime(settings)
    rt.vault.put("xact:pw-test", "https://files.example.com/a.pdf")  # a state client on the runtime's Redis
    assert rt.vault.get("xact:pw-test") == "https://files.example.com/a.pdf"
    with pytest.raises(redis.AuthenticationError):
        redis_client(load_settings(redis_url=f"redis://:wrong@127.0.0.1:{password_redis}/0")).ping()

    env = {"REDIS_URL": url}
    assert "broker-ok {'ok': 1}" in _run(_BROKER_PROBE, env)
    assert "cli-ok True" in _run(_CLI_PROBE, env)


def test_tls__every_client_connects_and_checks_the_certificate(
    tls_redis: tuple[int, Path], tmp_path: Path
) -> None:
    port, ca = tls_redis
    url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0"
    settings = load_settings(redis_url=url, redis_tls_ca_file=ca, cache_dir=tmp_path / "cache")
    assert redis_client(settings).ping()
    assert Runtime(settings).redis.ping()
    with pytest.raises(redis.ConnectionError, match="(?i)certificate"):
        redis_client(load_settings(redis_url=url)).ping()  # the system CA store does not know our CA

    env = {"REDIS_URL": url, "REDIS_TLS_CA_FILE": str(ca)}
    assert "broker-ok {'ok': 1}" in _run(_BROKER_PROBE, env)
    assert "cli-ok True" in _run(_CLI_PROBE, env)
