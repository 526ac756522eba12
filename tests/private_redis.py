"""A Redis-protocol server of the test's own: ``redis-server`` (or another binary, e.g. Valkey) on
127.0.0.1 and a free port, AOF on, its data in ``data_dir``; restartable on the same port, and
stoppable cleanly (SIGTERM) or as a crash (SIGKILL)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from ops.localrun import free_port


@dataclass
class PrivateRedis:
    data_dir: Path
    fsync: str = "everysec"
    binary: str = "redis-server"
    extra: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        binary = shutil.which(self.binary) or self.binary
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "yes", "--appendfsync", self.fsync, "--dir", str(self.data_dir)]
            + ["--logfile", str(self.data_dir / "server.log"), *self.extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except (redis.ConnectionError, redis.exceptions.BusyLoadingError):  # still loading its AOF
                time.sleep(0.1)
        raise TimeoutError(f"{self.binary} on port {self.port} did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: clean shutdown (AOF flushed). SIGKILL: a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)
