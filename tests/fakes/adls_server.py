"""A minimal, real HTTP server speaking the ADLS Gen2 calls ``azure-storage-file-datalake`` makes.

Azurite has no DFS endpoint, so the OneLake file store is contract-tested against this server.
It keeps files in memory and implements, in path-style addressing
(``http://127.0.0.1:<port>/<account>/<filesystem>/<path>``):

* DFS: ``PUT ?resource=file|directory|filesystem`` (create / truncate), ``PATCH ?action=append``
  (position-checked), ``PATCH ?action=flush`` (position- and ``If-Match``-checked), ``DELETE``;
* Blob (the SDK reads through the blob API): ``HEAD`` (properties) and ``GET`` (ranged download).

Requests are authenticated with SharedKey exactly as the service does: the signature is recomputed
from the account key and compared (wrong key -> 403 ``AuthenticationFailed``; none -> 401).
``inject_fault`` makes the next matching requests fail with a chosen status and error code.
``append_delay_seconds`` makes every append take that long (outside the server's lock), so
parallel appends overlap; ``max_appends_in_flight`` records the most seen at once.

Run standalone: ``python -m tests.fakes.adls_server --port 10100 --account name:base64key``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import email.utils
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote, urlsplit

from tests.fakes.http import NoDelayHTTPServer

_SIGNED_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)


@dataclass
class StoredFile:
    data: bytes = b""
    pending: dict[int, bytes] = field(default_factory=dict)
    """Appended, not yet flushed data by position (the SDK appends chunks in parallel)."""
    etag: str = ""
    last_modified: str = ""


@dataclass
class Fault:
    status: int
    code: str
    remaining: int
    method: str | None


class _Failure(Exception):
    def __init__(
        self, status: int, code: str, message: str = "", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(code)
        self.status, self.code, self.message = status, code, message or code
        self.headers = headers or {}


class FakeAdlsServer:
    """In-memory ADLS Gen2 server on 127.0.0.1. Use as a context manager or call start()/stop().

    ``accounts`` maps account name -> base64 account key. ``file_systems`` lists the filesystems
    that exist (others answer 404 ``FilesystemNotFound``); ``None`` accepts any name.
    """

    def __init__(self, accounts: dict[str, str], file_systems: set[str] | None = None, port: int = 0) -> None:
        self.accounts = dict(accounts)
        self.file_systems = None if file_systems is None else set(file_systems)
        self.files: dict[tuple[str, str, str], StoredFile] = {}
        self.requests: list[tuple[str, str]] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._etags = itertools.count(1)
        self.append_delay_seconds = 0.0
        self.appends_in_flight = 0
        self.max_appends_in_flight = 0
        self._httpd = NoDelayHTTPServer(("127.0.0.1", port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def account_url(self, account: str) -> str:
        return f"http://127.0.0.1:{self.port}/{account}"

    def start(self) -> FakeAdlsServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-adls", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeAdlsServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def inject_fault(self, status: int, code: str, *, times: int = 1, method: str | None = None) -> None:
        """Answer the next ``times`` requests (of ``method``, or any) with ``status`` / ``code``."""
        with self._lock:
            self._faults.append(Fault(status, code, times, method))

    def content(self, account: str, file_system: str, path: str) -> bytes | None:
        stored = self.files.get((account, file_system, path))
        return None if stored is None else stored.data

    # --- request handling (called from handler threads) --------------------------------------

    def _take_fault(self, method: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.method in (None, method):
                    fault.remaining -= 1
                    return fault
        return None

    @contextlib.contextmanager
    def _append_slot(self, is_append: bool) -> Iterator[None]:
        """Count an append in flight (and hold it ``append_delay_seconds``) while it is handled."""
        if not is_append:
            yield
            return
        with self._lock:
            self.appends_in_flight += 1
            self.max_appends_in_flight = max(self.max_appends_in_flight, self.appends_in_flight)
        try:
            if self.append_delay_seconds:
                time.sleep(self.append_delay_seconds)
            yield
        finally:
            with self._lock:
                self.appends_in_flight -= 1

    def _new_etag(self) -> tuple[str, str]:
        return f'"0x8D{next(self._etags):012X}"', email.utils.formatdate(usegmt=True)


def _make_handler(server: FakeAdlsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: object) -> None:  # keep test output quiet
            return

        def do_PUT(self) -> None:
            self._dispatch()

        do_PATCH = do_GET = do_HEAD = do_DELETE = do_PUT

        def _dispatch(self) -> None:
            body = self._read_body()
            server.requests.append((self.command, self.path))
            try:
                account, file_system, path, query = self._route()
                self._authenticate(account, query)
                fault = server._take_fault(self.command)
                if fault:
                    raise _Failure(fault.status, fault.code, "injected fault")
                if server.file_systems is not None and file_system not in server.file_systems:
                    code = "ContainerNotFound" if self.command in ("GET", "HEAD") else "FilesystemNotFound"
                    raise _Failure(404, code, "The specified filesystem does not exist.")
                handler = getattr(self, f"_op_{self.command.lower()}")
                is_append = self.command == "PATCH" and query.get("action") == "append"
                with server._append_slot(is_append), server._lock:
                    handler((account, file_system, path), query, body)
            except _Failure as failure:
                self._error(failure)

        # --- operations ------------------------------------------------------------------

        def _op_put(self, key: tuple[str, str, str], query: dict[str, str], _: bytes) -> None:
            resource = query.get("resource")
            if resource in ("filesystem", "directory") or query.get("restype") == "container":
                return self._reply(201, {"ETag": server._new_etag()[0]})
            if resource != "file":
                raise _Failure(400, "InvalidQueryParameterValue", "unsupported PUT")
            existing = server.files.get(key)
            if existing and self.headers.get("If-None-Match") == "*":
                raise _Failure(409, "PathAlreadyExists", "The specified path already exists.")
            etag, modified = server._new_etag()
            server.files[key] = StoredFile(etag=etag, last_modified=modified)
            self._reply(201, {"ETag": etag, "Last-Modified": modified})

        def _op_patch(self, key: tuple[str, str, str], query: dict[str, str], body: bytes) -> None:
            stored = server.files.get(key)
            if stored is None:
                raise _Failure(404, "PathNotFound", "The specified path does not exist.")
            position = int(query.get("position", "-1"))
            if query.get("action") == "append":
                if position < 0:
                    raise _Failure(400, "InvalidQueryParameterValue", "append needs a position")
                stored.pending[position] = body
                return self._reply(202, {})
            if query.get("action") == "flush":
                if_match = self.headers.get("If-Match")
                if if_match and if_match != stored.etag:
                    raise _Failure(412, "ConditionNotMet", "The condition specified is not met.")
                stored.data = _assemble(stored.pending, position)
                stored.pending = {}
                stored.etag, stored.last_modified = server._new_etag()
                return self._reply(200, {"ETag": stored.etag, "Last-Modified": stored.last_modified})
            raise _Failure(400, "InvalidQueryParameterValue", "unsupported PATCH action")

        def _op_head(self, key: tuple[str, str, str], _: dict[str, str], __: bytes) -> None:
            stored = self._existing(key, "BlobNotFound")
            self._reply(200, self._properties(stored), length=len(stored.data))

        def _op_get(self, key: tuple[str, str, str], _: dict[str, str], __: bytes) -> None:
            stored = self._existing(key, "BlobNotFound")
            data, status = stored.data, 200
            headers = self._properties(stored)
            spec = self.headers.get("x-ms-range") or self.headers.get("Range")
            if spec:
                start, end = _parse_range(spec)
                if start >= len(data):
                    raise _Failure(
                        416,
                        "InvalidRange",
                        "The range specified is invalid for the current size.",
                        {"Content-Range": f"bytes */{len(data)}"},
                    )
                end = min(end if end is not None else len(data) - 1, len(data) - 1)
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                data, status = data[start : end + 1], 206
            self._reply(status, headers, data)

        def _op_delete(self, key: tuple[str, str, str], _: dict[str, str], __: bytes) -> None:
            if server.files.pop(key, None) is None:
                raise _Failure(404, "PathNotFound", "The specified path does not exist.")
            self._reply(200, {})

        # --- helpers ---------------------------------------------------------------------

        def _existing(self, key: tuple[str, str, str], code: str) -> StoredFile:
            stored = server.files.get(key)
            if stored is None:
                raise _Failure(404, code, "The specified blob does not exist.")
            return stored

        @staticmethod
        def _properties(stored: StoredFile) -> dict[str, str]:
            return {
                "ETag": stored.etag,
                "Last-Modified": stored.last_modified,
                "x-ms-blob-type": "BlockBlob",
                "x-ms-creation-time": stored.last_modified,
                "Content-Type": "application/octet-stream",
                "Accept-Ranges": "bytes",
            }

        def _read_body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _route(self) -> tuple[str, str, str, dict[str, str]]:
            parts = urlsplit(self.path)
            segments = parts.path.lstrip("/").split("/", 2)
            if len(segments) < 2 or not segments[0] or not segments[1]:
                raise _Failure(400, "InvalidUri", "expected /<account>/<filesystem>[/<path>]")
            query = {
                unquote(k): unquote(v)
                for k, _, v in (item.partition("=") for item in parts.query.split("&") if item)
            }
            path = unquote(segments[2]) if len(segments) > 2 else ""
            return segments[0], segments[1], path, query

        def _authenticate(self, account: str, query: dict[str, str]) -> None:
            header = self.headers.get("Authorization", "")
            if not header:
                raise _Failure(
                    401, "NoAuthenticationInformation", "Server failed to authenticate the request."
                )
            scheme, _, credential = header.partition(" ")
            name, _, signature = credential.partition(":")
            key = server.accounts.get(account)
            if scheme != "SharedKey" or name != account or key is None:
                raise _Failure(403, "AuthenticationFailed", "Server failed to authenticate the request.")
            expected = _sign(key, self._string_to_sign(account, query))
            if not hmac.compare_digest(expected, signature):
                raise _Failure(
                    403,
                    "AuthenticationFailed",
                    "The MAC signature found in the HTTP request is not the same as any computed signature.",
                )

        def _string_to_sign(self, account: str, query: dict[str, str]) -> str:
            values = []
            for name in _SIGNED_HEADERS:
                value = self.headers.get(name) or ""
                values.append("" if name == "content-length" and value == "0" else value)
            ms_headers = sorted(
                (k.lower(), v) for k, v in self.headers.items() if k.lower().startswith("x-ms-")
            )
            canonical_headers = "".join(f"{k}:{v}\n" for k, v in ms_headers)
            resource = f"/{account}{urlsplit(self.path).path}"
            resource += "".join(f"\n{k.lower()}:{v}" for k, v in sorted(query.items()))
            return f"{self.command}\n" + "\n".join(values) + "\n" + canonical_headers + resource

        def _error(self, failure: _Failure) -> None:
            headers = {"x-ms-error-code": failure.code, **failure.headers}
            body = b""
            if self.command != "HEAD":
                body = json.dumps({"error": {"code": failure.code, "message": failure.message}}).encode()
                headers["Content-Type"] = "application/json;charset=utf-8"
            self._reply(failure.status, headers, body)

        def _reply(
            self, status: int, headers: dict[str, str], body: bytes = b"", length: int | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("x-ms-request-id", f"fake-{next(server._etags)}")
            self.send_header("x-ms-version", self.headers.get("x-ms-version") or "2021-08-06")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)

    return Handler


def _assemble(chunks: dict[int, bytes], length: int) -> bytes:
    """Join appended chunks; they must cover ``[0, length)`` without gaps, as the service requires."""
    data = bytearray()
    for position in sorted(chunks):
        if position != len(data):
            raise _Failure(400, "InvalidFlushPosition", "appended data has a gap or overlap")
        data.extend(chunks[position])
    if len(data) != length:
        raise _Failure(400, "InvalidFlushPosition", "flush position does not match the appended length")
    return bytes(data)


def _parse_range(spec: str) -> tuple[int, int | None]:
    unit, _, span = spec.partition("=")
    start, _, end = span.partition("-")
    if unit.strip() != "bytes" or not start.strip().isdigit():
        raise _Failure(400, "InvalidRange", "unsupported range")
    return int(start), int(end) if end.strip() else None


def _sign(key_b64: str, string_to_sign: str) -> str:
    digest = hmac.new(base64.b64decode(key_b64), string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def main() -> None:
    parser = argparse.ArgumentParser(description="In-memory ADLS Gen2 (DFS) test server on 127.0.0.1")
    parser.add_argument("--port", type=int, default=10100)
    parser.add_argument("--account", action="append", required=True, help="name:base64key (repeatable)")
    args = parser.parse_args()
    accounts = dict(item.split(":", 1) for item in args.account)
    server = FakeAdlsServer(accounts, port=args.port)
    print(f"fake ADLS listening on http://127.0.0.1:{server.port}/<account>", flush=True)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server._httpd.serve_forever()
    finally:
        server._httpd.server_close()


if __name__ == "__main__":
    main()
