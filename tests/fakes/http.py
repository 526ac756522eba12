"""A throwaway HTTP server on 127.0.0.1 for tests that need a real peer."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def serving(
    handler: type[BaseHTTPRequestHandler], name: str = "test-http-server"
) -> Iterator[ThreadingHTTPServer]:
    """``handler`` served on a free loopback port from a daemon thread until the block ends;
    the server's ``server_address[1]`` is the port."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
