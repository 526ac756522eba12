"""The ClaimX client takes no proxy from the environment; only CLAIMX_API_PROXY_URL (issue 7 item 12).

Two real HTTP servers on 127.0.0.1: the "API" and a forward "proxy" that records what reaches it.
The breaker and rate limiter are real, on Redis, under names of this test's own.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
from pydantic import SecretStr

from core.settings import load_settings
from domains.claimx.api import ApiConfig, ClaimXClient
from domains.claimx.breaker import CircuitBreaker
from domains.claimx.ratelimit import RateLimiter

pytestmark = pytest.mark.integration


def _server(name: str) -> tuple[ThreadingHTTPServer, list[str]]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.path)
            body = json.dumps({"served_by": name}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, seen


@pytest.fixture
def servers() -> Iterator[tuple[str, list[str], str, list[str]]]:
    api, api_seen = _server("api")
    proxy, proxy_seen = _server("proxy")
    yield (
        f"http://127.0.0.1:{api.server_address[1]}/service/cxedirest",
        api_seen,
        f"http://127.0.0.1:{proxy.server_address[1]}",
        proxy_seen,
    )
    for httpd in (api, proxy):
        httpd.shutdown()
        httpd.server_close()


def _client(base_url: str, proxy_url: str | None = None) -> ClaimXClient:
    client = redis.Redis.from_url(load_settings().redis_url)
    name = f"test-session-env-{uuid.uuid4().hex}"
    config = ApiConfig(base_url=base_url, token=SecretStr("dGVzdDp0ZXN0"), proxy_url=proxy_url)
    return ClaimXClient(
        config,
        redis=client,
        breaker=CircuitBreaker(client, name),
        limiter=RateLimiter(client, name, rate_per_second=100),
    )


def test_claimx_client__ignores_proxy_environment(servers, monkeypatch: pytest.MonkeyPatch) -> None:
    base, api_seen, proxy, proxy_seen = servers
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert _client(base).get_project(1) == {"served_by": "api"}
    assert proxy_seen == [] and api_seen == ["/service/cxedirest/export/project/1"]


def test_claimx_client__uses_the_configured_proxy(servers) -> None:
    base, api_seen, proxy, proxy_seen = servers
    assert _client(base, proxy_url=proxy).get_project(2) == {"served_by": "proxy"}
    assert proxy_seen == [f"{base}/export/project/2"] and api_seen == []  # absolute-form: a proxy request


def test_claimx_proxy_setting_reaches_the_client() -> None:
    settings = load_settings(
        claimx_api_token="dGVzdDp0ZXN0", claimx_api_proxy_url="http://proxy.internal:3128"
    )
    assert ApiConfig.from_settings(settings).proxy_url == "http://proxy.internal:3128"
