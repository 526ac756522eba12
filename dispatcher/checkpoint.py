"""The poller's durable checkpoint: one JSON file per domain, replaced atomically, one owner."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from core.errors import ConfigError
from dispatcher.kusto import format_time, parse_time
from dispatcher.poll_query import Cursor


class CheckpointStore:
    """``{"last_ingestion_time", "last_trace_id", "updated_at"}`` in one JSON file, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Cursor | None:
        try:
            data = json.loads(self.path.read_text())
            return Cursor(parse_time(data["last_ingestion_time"]), data.get("last_trace_id") or "")
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"checkpoint {self.path} is unreadable ({exc}); fix or delete it") from None

    def save(self, cursor: Cursor, *, now: datetime) -> None:
        body = {
            "last_ingestion_time": format_time(cursor.ticks),
            "last_trace_id": cursor.key or None,
            "updated_at": now.astimezone(UTC).isoformat(),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(body, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold ``{path}.lock``; a second poller on the same checkpoint fails fast."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(f"another poller is using {self.path}") from None
            yield


# --- publishing -------------------------------------------------------------------------------
