"""Flower as ``make run`` and docker-compose start it (``python -m ops.flower``), issue 7 item 13:
basic auth from FLOWER_BASIC_AUTH, and no unauthenticated listening beyond loopback."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "args, extra",
    [
        (["--address=0.0.0.0"], {}),
        (["--address=10.1.2.3"], {}),
        (["--address=127.0.0.1"], {"FLOWER_EXPOSED_ADDRESS": "0.0.0.0"}),  # published beyond loopback
        (["--address=0.0.0.0"], {"FLOWER_BASIC_AUTH": "admin"}),  # no password
        (["--address=0.0.0.0"], {"FLOWER_BASIC_AUTH": "admin:pw,:x"}),
    ],
)
def test_flower__refuses_to_listen_beyond_loopback_without_basic_auth(
    args: list[str], extra: dict[str, str]
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ops.flower", f"--port={_free_port()}", *args],
        cwd=ROOT,
        env=_env(**extra),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 78, proc.stderr
    assert "refusing to start" in proc.stderr and "FLOWER_BASIC_AUTH" in proc.stderr
    assert "pw" not in proc.stderr  # the password is never echoed


def _get(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_flower__basic_auth_from_the_environment(tmp_path: Path) -> None:
    port = _free_port()
    log = (tmp_path / "flower.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops.flower", f"--port={port}"],
        cwd=ROOT,
        env=_env(FLOWER_BASIC_AUTH="admin:s3cret-flower"),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(f"{base}/healthcheck") == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "flower.log").read_text()
            assert time.monotonic() < deadline, "Flower did not start"
            time.sleep(0.5)
        assert _get(f"{base}/workers") == 401
        assert _get(f"{base}/workers", "admin:wrong") == 401
        assert _get(f"{base}/workers", "admin:s3cret-flower") == 200
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert "s3cret-flower" not in (tmp_path / "flower.log").read_text()
