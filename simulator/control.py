"""Python handles on the simulator: :class:`Simulator` runs it in this process (a background thread);
:class:`SimulatorClient` drives one running elsewhere (``python -m simulator serve``) over
its ``/_sim`` control endpoints. Both offer the same fault and counter methods.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from simulator import files, synthetic
from simulator.claimx_api import API_PREFIX, DEFAULT_SAMPLES_DIR, DEFAULT_TOKEN, ClaimxApi
from simulator.faults import FaultRule
from simulator.server import SimHTTPServer, SimState

BIND_HOST = "127.0.0.1"


def _rule(path_prefix: str, **fields: Any) -> dict[str, Any]:
    return {"path_prefix": path_prefix, **{k: v for k, v in fields.items() if v is not None}}


class _Urls:
    base_url: str

    @property
    def api_base_url(self) -> str:
        """The ClaimX API base URL in dev (``{base}/claimx-api.example.com/service/cxedirest``)."""
        return self.base_url + API_PREFIX

    def local_url(self, url: str) -> str:
        """The DEV rewrite: ``https://{host}/{path}?{query}`` → ``{base}/{host}/{path}?{query}``."""
        parts = urlsplit(url)
        query = f"?{parts.query}" if parts.query else ""
        return f"{self.base_url}/{parts.netloc}{parts.path}{query}"


class Simulator(_Urls):
    """The simulator in a background thread of this process, bound to 127.0.0.1.

    ``port=0`` picks a free port. Use as a context manager or call :meth:`start` / :meth:`stop`.
    ``file_size`` is the size of non-synthetic files; ``media_bytes`` the size of synthetic ClaimX
    media; ``media_per_project`` how many media a synthetic project's full media list returns.
    """

    def __init__(
        self,
        port: int = 0,
        token: str = DEFAULT_TOKEN,
        *,
        samples_dir: Path = DEFAULT_SAMPLES_DIR,
        file_size: int = files.DEFAULT_SIZE_BYTES,
        media_bytes: int = files.DEFAULT_SIZE_BYTES,
        media_per_project: int = synthetic.MEDIA_SLOTS,
    ) -> None:
        self._port = port
        api = ClaimxApi(
            samples_dir, token=token, media_bytes=media_bytes, media_per_project=media_per_project
        )
        self._state = SimState(api, file_size=file_size)
        self._server: SimHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Simulator:
        if self._server is not None:
            return self
        self._state.stopping.clear()
        self._server = SimHTTPServer((BIND_HOST, self._port), self._state)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake delayed handlers and close open connections."""
        if self._server is None:
            return
        self._state.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._state.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:  # type: ignore[override]  # read-only here: the port is known once serving
        return f"http://{BIND_HOST}:{self.port}"

    def set_fault(
        self,
        path_prefix: str = "/",
        *,
        status: int | None = None,
        method: str | None = None,
        retry_after: float | None = None,
        times: int | None = None,
        delay_seconds: float = 0.0,
        body: str | None = None,
        close_connection: bool = False,
        truncate_at: int | None = None,
    ) -> int:
        """Add a fault rule (see :mod:`simulator.faults`); returns its id."""
        rule = FaultRule.from_dict(
            _rule(
                path_prefix,
                status=status,
                method=method,
                retry_after=retry_after,
                times=times,
                delay_seconds=delay_seconds,
                body=body,
                close_connection=close_connection,
                truncate_at=truncate_at,
            )
        )
        return self._state.faults.add(rule)

    def clear_faults(self) -> None:
        self._state.faults.clear()

    def faults(self) -> list[dict[str, Any]]:
        return self._state.faults.rules()

    def stats(self) -> dict[str, int]:
        """Request counts per endpoint, e.g. ``{"GET /export/project/{id}": 2, "files": 5}``."""
        return self._state.stats()

    def file_stats(self) -> dict[str, int]:
        """Request counts per file path ``/{host}/{path}`` (percent-decoded, no query)."""
        return self._state.file_stats()

    def reset_stats(self) -> None:
        self._state.reset_stats()


class SimulatorClient(_Urls):
    """Control a simulator running in another process through ``{base_url}/_sim/...``."""

    def __init__(self, base_url: str, *, timeout_seconds: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout_seconds

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self._timeout) as response:
            return json.loads(response.read() or b"null")

    def healthy(self) -> bool:
        try:
            return self._call("GET", "/_sim/health").get("status") == "ok"
        except OSError:
            return False

    def set_fault(self, path_prefix: str = "/", **fields: Any) -> int:
        return int(self._call("POST", "/_sim/faults", {"rule": _rule(path_prefix, **fields)})["id"])

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sim/faults")

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/_sim/faults")["rules"])

    def stats(self) -> dict[str, int]:
        return dict(self._call("GET", "/_sim/stats"))

    def file_stats(self) -> dict[str, int]:
        return dict(self._call("GET", "/_sim/stats/files"))

    def reset_stats(self) -> None:
        self._call("POST", "/_sim/stats/reset", {})
