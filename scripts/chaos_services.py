"""Private, killable services for a chaos run: a single-node Kafka (KRaft) and a ``redis-server``.

Both bind 127.0.0.1 on free ports with their data under the run's own directory, so a chaos run
may SIGKILL and restart them on their data without touching the shared stack (6379 / 9092).
Kafka runs from the jars ``scripts/stack.sh install`` put in ``.stack/kafka/libs``, with the same
``server.properties`` template as the shared broker.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.private_redis import PrivateRedis  # noqa: F401 - the chaos run's Redis, re-exported

ROOT = Path(__file__).resolve().parents[1]
KAFKA_LIBS = Path(os.environ.get("STACK_DIR", ROOT / ".stack")) / "kafka" / "libs"
TEMPLATES = ROOT / "scripts" / "kafka"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PrivateKafka:
    """A single-node KRaft broker (combined broker + controller) in ``data_dir``."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _java(self, *args: str) -> list[str]:
        return [
            "java",
            f"-Dkafka.logs.dir={self.data_dir}",
            f"-Dlog4j2.configurationFile={TEMPLATES / 'log4j2.properties'}",
            "-Dlog4j2.shutdownHookEnabled=false",
            "-cp",
            f"{KAFKA_LIBS}/*",
            *args,
        ]

    def start(self, timeout: float = 120.0) -> None:
        if not KAFKA_LIBS.is_dir():
            raise RuntimeError(
                f"no Kafka jars in {KAFKA_LIBS}: run `make install` (scripts/stack.sh install)"
            )
        props = self.data_dir / "server.properties"
        if not props.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            text = (TEMPLATES / "server.properties.template").read_text()
            text = (
                text.replace("@KAFKA_PORT@", str(self.port))
                .replace("@CONTROLLER_PORT@", str(self.controller_port))
                .replace("@DATA_DIR@", str(self.data_dir / "data"))
            )
            props.write_text(text)
            cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            subprocess.run(
                self._java("kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(props)),
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=120,
            )
        with open(self.data_dir / "kafka.out", "ab") as out:
            self.proc = subprocess.Popen(
                ["java", "-Xms128m", "-Xmx384m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                 *self._java("kafka.Kafka", str(props))[1:]],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"kafka exited with {self.proc.returncode}: see {self.data_dir}/kafka.out")
            try:
                meta = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0}).list_topics(
                    timeout=2
                )
                if meta.brokers:
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.5)
        raise TimeoutError(f"kafka on {self.bootstrap} did not start")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(60)
