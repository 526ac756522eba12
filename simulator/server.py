"""The simulator's HTTP server: attachment files, the ClaimX API, redirects, faults and counters.

One ``ThreadingHTTPServer`` on 127.0.0.1 speaking HTTP/1.1 (keep-alive). URL layout, where a
production URL ``https://{host}/{path}?{query}`` is fetched as ``{base}/{host}/{path}?{query}``:

* ``/claimx-api.example.com/service/cxedirest/...`` — the ClaimX API (:mod:`.claimx_api`).
* ``/{host}/redirect?to=<url>`` — 302 to that URL; ``/{host}/redirect-loop/{n}`` — 302 to
  ``https://{host}/redirect-loop/{n}`` (itself, in production form) forever.
* ``/{host}/{path}`` — GET/HEAD a deterministic file (:mod:`.files`); single byte ranges honoured;
  an expired presigned query answers 403 with an S3 ``AccessDenied`` body.
* ``/_sim/health``, ``/_sim/faults`` (GET, POST ``{"rule": {...}}``, DELETE), ``/_sim/stats`` (GET),
  ``/_sim/stats/files`` (GET, per file path), ``/_sim/stats/reset`` (POST) — control, never faulted
  or counted.

Every other request is counted under its endpoint name, then checked against the fault rules.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from simulator import files
from simulator.claimx_api import API_HOST, API_PREFIX, ClaimxApi, endpoint_name
from simulator.faults import FaultBook, FaultRule, FaultRuleError

log = logging.getLogger("simulator")

_IDLE_TIMEOUT_SECONDS = 120


class SimState:
    """Everything the request handlers share. Thread-safe."""

    def __init__(
        self,
        api: ClaimxApi,
        *,
        file_size: int = files.DEFAULT_SIZE_BYTES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api = api
        self.file_size = file_size
        self.clock = clock
        self.faults = FaultBook()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._endpoints: Counter[str] = Counter()
        self._files: Counter[str] = Counter()
        self._connections: set[socket.socket] = set()

    def count(self, endpoint: str, file_path: str | None = None) -> None:
        with self._lock:
            self._endpoints[endpoint] += 1
            if file_path is not None:
                self._files[file_path] += 1

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._endpoints)

    def file_stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._files)

    def reset_stats(self) -> None:
        with self._lock:
            self._endpoints.clear()
            self._files.clear()

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self._lock:
            (self._connections.add if alive else self._connections.discard)(conn)

    def close_connections(self) -> None:
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):  # already closed by the peer
                conn.shutdown(socket.SHUT_RDWR)


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], state: SimState) -> None:
        self.state = state
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ClaimsSimulator/1.0"
    timeout = _IDLE_TIMEOUT_SECONDS
    server: SimHTTPServer

    # --- plumbing ---------------------------------------------------------------------------
    def setup(self) -> None:
        super().setup()
        # As real web servers do (nginx's tcp_nodelay): without it, the body written after the
        # headers waits for the client's delayed ACK, about 40 ms per keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.state.track(self.connection, True)

    def finish(self) -> None:
        self.server.state.track(self.connection, False)
        super().finish()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Path only: queries carry (fake) presigned signatures, which never go to logs.
        log.debug("simulator %s %s -> %s", self.command, urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        log.debug("simulator: %s", format % args if args else format)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self._truncate_at: int | None = None
        try:
            raw_body = self._read_body()
            target = urlsplit(self.path)
            if target.path.startswith("/_sim/"):
                self._control(method, target.path, raw_body)
            else:
                self._serve(method, target.path, target.query, raw_body)
        except (BrokenPipeError, ConnectionResetError, TimeoutError) as exc:
            log.debug("simulator client went away: %s", type(exc).__name__)
            self.close_connection = True

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self._write(body)

    def _send_json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _write(self, chunk: bytes) -> bool:
        """Write a body chunk honouring a ``truncate_at`` fault; False once the body is cut."""
        if self._truncate_at is not None:
            if len(chunk) >= self._truncate_at:
                self.wfile.write(chunk[: self._truncate_at])
                self.wfile.flush()
                self.close_connection = True
                self._truncate_at = 0
                return False
            self._truncate_at -= len(chunk)
        self.wfile.write(chunk)
        return True

    # --- control ----------------------------------------------------------------------------
    def _control(self, method: str, path: str, raw_body: bytes) -> None:
        state = self.server.state
        route = (method, path.rstrip("/"))
        if route == ("GET", "/_sim/health"):
            self._send_json(200, {"status": "ok"})
        elif route == ("GET", "/_sim/stats"):
            self._send_json(200, state.stats())
        elif route == ("GET", "/_sim/stats/files"):
            self._send_json(200, state.file_stats())
        elif route == ("POST", "/_sim/stats/reset"):
            state.reset_stats()
            self._send_json(200, {"reset": True})
        elif route == ("GET", "/_sim/faults"):
            self._send_json(200, {"rules": state.faults.rules(), "fired": state.faults.fired})
        elif route == ("DELETE", "/_sim/faults"):
            state.faults.clear()
            self._send_json(200, {"cleared": True})
        elif route == ("POST", "/_sim/faults"):
            self._add_faults(raw_body)
        else:
            self._send_json(404, {"error": f"unknown control endpoint {method} {path}"})

    def _add_faults(self, raw_body: bytes) -> None:
        try:
            payload = json.loads(raw_body or b"{}")
            items = payload.get("rules") or [payload.get("rule")]
            rules = [FaultRule.from_dict(item) for item in items]
        except (ValueError, AttributeError, FaultRuleError) as exc:
            self._send_json(400, {"error": f"bad fault rule: {exc}"})
            return
        ids = [self.server.state.faults.add(rule) for rule in rules]
        self._send_json(201, {"id": ids[0], "ids": ids})

    # --- simulated services -----------------------------------------------------------------
    def _serve(self, method: str, path: str, query: str, raw_body: bytes) -> None:
        state = self.server.state
        host, _, rest = path.lstrip("/").partition("/")
        host = host.lower()
        api_rel = None
        body_json: dict[str, Any] | None = None
        bad_json = False
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            api_rel = path[len(API_PREFIX) :] or "/"
            if raw_body:
                try:
                    parsed = json.loads(raw_body)
                    body_json = parsed if isinstance(parsed, dict) else None
                    bad_json = body_json is None
                except ValueError:
                    bad_json = True
            state.count(endpoint_name(method, api_rel, body_json))
        elif rest == "redirect" or rest.startswith("redirect-loop/"):
            state.count("redirect")
        else:
            state.count("files" if method == "GET" else f"{method} files", f"/{host}/{unquote(rest)}")

        targets = [self.path] + ([api_rel + (f"?{query}" if query else "")] if api_rel else [])
        rule = state.faults.take(method, *targets)
        if rule is not None:
            if rule.delay_seconds:
                state.stopping.wait(rule.delay_seconds)
            if rule.close_connection:
                self.close_connection = True
                return
            if rule.status is not None:
                body = (rule.body if rule.body is not None else f"Simulated fault {rule.status}").encode()
                self._send(rule.status, body, rule.content_type, rule.headers())
                return
            self._truncate_at = rule.truncate_at

        if api_rel is not None:
            if bad_json:
                self._send_json(400, {"status": 400, "error": "Bad Request", "message": "invalid JSON body"})
                return
            response = state.api.handle(method, api_rel, query, self.headers.get("Authorization"), body_json)
            self._send(response.status, response.body, response.content_type, response.headers)
        elif host == API_HOST:
            self._send_json(404, {"error": "not a ClaimX API path"})
        elif rest == "redirect" or rest.startswith("redirect-loop/"):
            self._redirect(host, rest, query)
        elif method in ("GET", "HEAD"):
            self._file(host, rest, query)
        else:
            self._send(405, b"Method Not Allowed", headers={"Allow": "GET, HEAD"})

    def _redirect(self, host: str, rest: str, query: str) -> None:
        if rest == "redirect":
            to = parse_qs(query).get("to", [""])[0]
            if not to:
                self._send(400, b"redirect needs ?to=<url-encoded absolute URL>")
                return
            location = to
        else:
            location = f"https://{host}/{rest}"
        self._send(302, b"", headers={"Location": location})

    def _file(self, host: str, rest: str, query: str) -> None:
        state = self.server.state
        target = f"{host}/{rest}" + (f"?{query}" if query else "")
        spec = files.file_spec(target, default_size=state.file_size)
        if spec is None:
            self._send(404, b"Not Found")
            return
        expires_at = files.presigned_expiry(query)
        now = state.clock()
        if expires_at is not None and now >= expires_at:
            body = files.access_denied_xml(f"/{rest}", expires_at, now)
            self._send(403, body, "application/xml")
            return
        start, end, status = 0, spec.size, 200
        extra = {"Accept-Ranges": "bytes", "ETag": f'"{spec.seed.hex()[:32]}"'}
        byte_range = files.parse_range(self.headers.get("Range"), spec.size)
        if byte_range == "invalid":
            self._send(416, b"", headers={"Content-Range": f"bytes */{spec.size}"})
            return
        if byte_range is not None:
            start, end = byte_range
            status = 206
            extra["Content-Range"] = f"bytes {start}-{end - 1}/{spec.size}"
        self.send_response(status)
        self.send_header("Content-Type", spec.content_type)
        self.send_header("Content-Length", str(end - start))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        for chunk in files.iter_content(spec, start, end):
            if not self._write(chunk):
                return
