"""A throwaway HTTP server on 127.0.0.1 for tests that need a real peer."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class NoDelayHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server whose connections send at once (``TCP_NODELAY``), as real web
    servers do: otherwise a body written after its headers waits for the client's delayed ACK,
    about 40 ms per keep-alive response."""

    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr


@contextmanager
def serving(
    handler: type[BaseHTTPRequestHandler], name: str = "test-http-server"
) -> Iterator[NoDelayHTTPServer]:
    """``handler`` served on a free loopback port from a daemon thread until the block ends;
    the server's ``server_address[1]`` is the port."""
    httpd = NoDelayHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
