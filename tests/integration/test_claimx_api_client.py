"""The ClaimX client over real HTTP (the simulator) with its Redis-shared breaker, rate limit and cache.

Needs Redis at redis://127.0.0.1:6379 (db 15; only keys under this module's random prefix are
touched). The simulator runs in-process on 127.0.0.1.
"""

from __future__ import annotations

import json
import multiprocessing
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import redis
from pydantic import SecretStr

from core.errors import CircuitOpenError, ErrorCategory, PermanentError, TransientError
from domains.claimx.api import ApiConfig, ClaimXApiError, ClaimXCircuitOpenError, ClaimXClient
from domains.claimx.breaker import BreakerConfig, BreakerState, CircuitBreaker
from domains.claimx.handlers import HandlerResult, handle
from domains.claimx.models import parse_claimx_record
from domains.claimx.project_cache import ProjectCache
from domains.claimx.ratelimit import RateLimiter
from simulator import Simulator
from tests.samples import SAMPLES as REPO_SAMPLES

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/15"
TOKEN = "dGVzdDp0ZXN0"
SAMPLES = REPO_SAMPLES
NOW = datetime(2026, 1, 5, 21, 0, tzinfo=UTC)
FAST = BreakerConfig(failure_threshold=5, open_seconds=0.6, half_open_max_calls=3, success_threshold=2)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(token=TOKEN) as simulator:
        yield simulator


@pytest.fixture
def r() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def prefix(r: redis.Redis) -> Iterator[str]:
    value = f"test-claimx-{uuid.uuid4().hex[:10]}"
    yield value
    keys = list(r.scan_iter(match=f"{value}*"))
    if keys:
        r.delete(*keys)


@pytest.fixture
def make_client(sim: Simulator, r: redis.Redis, prefix: str) -> Iterator[Callable[..., ClaimXClient]]:
    sim.clear_faults()
    sim.reset_stats()
    clients: list[ClaimXClient] = []

    def factory(
        *,
        token: str = TOKEN,
        base_url: str | None = None,
        timeout: float = 5.0,
        rate: float = 1000.0,
        breaker: CircuitBreaker | None = None,
    ) -> ClaimXClient:
        config = ApiConfig(
            base_url=base_url or sim.api_base_url,
            token=SecretStr(token),
            timeout_seconds=timeout,
            connect_timeout_seconds=1.0,
            rate_per_second=rate,
        )
        client = ClaimXClient(
            config,
            redis=r,
            breaker=breaker or CircuitBreaker(r, "claimx_api", config=FAST, key_prefix=f"{prefix}:breaker"),
            limiter=RateLimiter(r, "claimx_api", rate_per_second=rate, key_prefix=f"{prefix}:rate"),
        )
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()
    sim.clear_faults()


def _requests_seen(sim: Simulator) -> int:
    return sum(v for k, v in sim.stats().items() if k != "files")


# --- classification over HTTP (SPEC §5) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "category", "prefix_text"),
    [
        (401, ErrorCategory.AUTH, "Unauthorized (401): "),
        (403, ErrorCategory.PERMANENT, "Forbidden (403): "),
        (404, ErrorCategory.PERMANENT, "Not found (404): "),
        (429, ErrorCategory.TRANSIENT, "Rate limited (429): "),
        (500, ErrorCategory.TRANSIENT, "Server error (500): "),
        (502, ErrorCategory.TRANSIENT, "Server error (502): "),
        (503, ErrorCategory.TRANSIENT, "Server error (503): "),
        (504, ErrorCategory.TRANSIENT, "Server error (504): "),
        (400, ErrorCategory.PERMANENT, "Client error (400): "),
        (422, ErrorCategory.PERMANENT, "Client error (422): "),
        (501, ErrorCategory.TRANSIENT, "HTTP error (501): "),
        (302, ErrorCategory.TRANSIENT, "HTTP error (302): "),
    ],
)
def test_client__http_status_is_classified_per_spec_table(
    make_client: Callable[..., ClaimXClient],
    sim: Simulator,
    status: int,
    category: ErrorCategory,
    prefix_text: str,
) -> None:
    client = make_client()
    sim.set_fault("/export/project/5010001", status=status, times=1)
    with pytest.raises(ClaimXApiError) as info:
        client.get_project("5010001")
    assert info.value.category is category and info.value.http_status == status
    assert str(info.value) == f"{prefix_text}{sim.api_base_url}/export/project/5010001"
    assert TOKEN not in repr(info.value) and TOKEN not in str(info.value.args)


def test_client__timeout_is_transient_with_spec_message(
    make_client: Callable[..., ClaimXClient], sim: Simulator
) -> None:
    client = make_client(timeout=0.3)
    sim.set_fault("/export/project/5010001", delay_seconds=1.5, times=1)
    with pytest.raises(ClaimXApiError, match=r"^Timeout after 0\.3s: http://127\.0\.0\.1") as info:
        client.get_project(5010001)
    assert info.value.category is ErrorCategory.TRANSIENT


def test_client__connection_refused_is_transient(make_client: Callable[..., ClaimXClient]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = make_client(base_url=f"http://127.0.0.1:{port}/api")
    with pytest.raises(ClaimXApiError, match="^Connection error: ") as info:
        client.get_project(1)
    assert info.value.category is ErrorCategory.TRANSIENT


def test_client__sample_error_scenarios(make_client: Callable[..., ClaimXClient]) -> None:
    client = make_client()
    expected = {
        "5010003": (ErrorCategory.TRANSIENT, 503),
        "5010004": (ErrorCategory.TRANSIENT, 429),
        "5010005": (ErrorCategory.AUTH, 401),
    }
    for project, (category, status) in expected.items():
        with pytest.raises(ClaimXApiError) as info:
            client.get_project(project)
        assert (info.value.category, info.value.http_status) == (category, status)
    with pytest.raises(ClaimXApiError) as info:
        client.get_project("5010004")
    assert info.value.retry_after_seconds == 1.0


def test_client__wrong_token_is_auth_and_never_shown(make_client: Callable[..., ClaimXClient]) -> None:
    secret = "c2VjcmV0dXNlcjpzM2NyM3Q="
    client = make_client(token=secret)
    with pytest.raises(ClaimXApiError) as info:
        client.get_project(5010001)
    error = info.value
    assert error.category is ErrorCategory.AUTH
    texts = [str(error), repr(error), str(error.args), str(error.__cause__), str(error.__context__)]
    assert all(secret not in t for t in texts)
    assert secret not in repr(client.config) and secret not in str(client.config)


# --- endpoints and request economy -----------------------------------------------------------------


def test_client__endpoints_return_unwrapped_bodies(
    make_client: Callable[..., ClaimXClient], sim: Simulator
) -> None:
    client = make_client()
    assert client.get_project(5010001)["data"]["project"]["projectId"] == 5010001
    media = client.get_project_media("5010001", ["880001", "880002"])
    assert [m["mediaID"] for m in media] == [880001, 880002]
    assert len(client.get_project_media("5010001")) == 4
    assert client.get_custom_task("7700002")["customTask"]["taskId"] == 32513
    video = client.get_video_collaboration("5010001")
    assert isinstance(video, dict) and len(video["data"]) == 2
    assert client.get_project_contacts(5010001)[0]["contactId"] == 120001
    assert client.get_project_conversations(5010001)[0]["conversationId"] == 450001
    assert client.get_project_tasks(5010001)[0]["taskId"] == 45001
    assert client.requests_made == 8 == _requests_seen(sim)


def test_client__non_integer_id_is_permanent_without_a_request(
    make_client: Callable[..., ClaimXClient], sim: Simulator
) -> None:
    client = make_client()
    with pytest.raises(ClaimXApiError) as info:
        client.get_project("../admin")
    assert info.value.category is ErrorCategory.PERMANENT
    assert client.requests_made == 0 and _requests_seen(sim) == 0


EXPECTED = {
    e["line"]: e
    for e in json.loads((SAMPLES / "expected" / "claimx_expectations.json").read_text())["events"]
}
LINES = (SAMPLES / "claimx_events.jsonl").read_text().splitlines()


@pytest.mark.parametrize("line", range(1, len(LINES) + 1))
def test_handle__every_sample_line_over_http_matches_expectations(
    make_client: Callable[..., ClaimXClient], sim: Simulator, line: int
) -> None:
    client = make_client()
    event = parse_claimx_record(LINES[line - 1], kafka_timestamp=None)
    spec = EXPECTED[line]
    if line in (14, 20, 22):
        with pytest.raises(PermanentError if line != 20 else ClaimXApiError) as info:
            handle(event, client, now=NOW, cache=None)
        assert info.value.category is ErrorCategory.PERMANENT
        return
    result = handle(event, client, now=NOW, cache=None)
    # Lines without row counts: 18 personal property (DECISIONS: handled), 19 conversation, 21 = line 2.
    expected_rows = spec.get("rows") or {18: {"projects": 1}, 19: {}, 21: EXPECTED[2]["rows"]}[line]
    assert result.rows.counts() == expected_rows
    assert result.api_calls == client.requests_made == _requests_seen(sim)


# --- circuit breaker ------------------------------------------------------------------------------


def test_breaker__opens_after_five_counted_failures_and_blocks_before_http(
    make_client: Callable[..., ClaimXClient], sim: Simulator
) -> None:
    client = make_client()
    sim.set_fault("/export/project/5010001", status=503, times=5)
    for _ in range(5):
        with pytest.raises(ClaimXApiError):
            client.get_project(5010001)
    with pytest.raises(ClaimXCircuitOpenError, match=r"^Circuit open, retry after 1s$") as info:
        client.get_project(5010001)
    assert info.value.category is ErrorCategory.CIRCUIT_OPEN and info.value.retry_after_seconds == 1
    assert isinstance(info.value, CircuitOpenError)
    assert client.requests_made == 5 == _requests_seen(sim)
    time.sleep(FAST.open_seconds + 0.1)
    client.get_project(5010001)  # half-open trial 1
    client.get_project(5010001)  # trial 2 closes it
    assert client._breaker.state() is BreakerState.CLOSED  # asserting shared state


def test_breaker__auth_and_permanent_failures_are_not_counted(
    make_client: Callable[..., ClaimXClient], sim: Simulator
) -> None:
    client = make_client()
    sim.set_fault("/export/project/5010001", status=401, times=6)
    sim.set_fault("/export/project/5010002", status=404, times=6)
    for project in ["5010001"] * 6 + ["5010002"] * 6:
        with pytest.raises(ClaimXApiError) as info:
            client.get_project(project)
        assert info.value.category in (ErrorCategory.AUTH, ErrorCategory.PERMANENT)
    assert client._breaker.state() is BreakerState.CLOSED
    assert client.get_project(5010001)["data"]["project"]["projectId"] == 5010001


def test_breaker__timeouts_count_as_failures(
    make_client: Callable[..., ClaimXClient], sim: Simulator
) -> None:
    client = make_client(timeout=0.2)
    sim.set_fault("/export/project/5010001", delay_seconds=0.6, times=5)
    for _ in range(5):
        with pytest.raises(ClaimXApiError, match="^Timeout"):
            client.get_project(5010001)
    with pytest.raises(ClaimXCircuitOpenError):
        client.get_project(5010001)


def _breaker(r: redis.Redis, prefix: str, name: str = "b") -> CircuitBreaker:
    return CircuitBreaker(r, name, config=FAST, key_prefix=f"{prefix}:breaker")


def test_breaker__half_open_admits_three_trials_and_failure_reopens(r: redis.Redis, prefix: str) -> None:
    breaker = _breaker(r, prefix)
    for _ in range(5):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state() is BreakerState.OPEN
    time.sleep(FAST.open_seconds + 0.05)
    for _ in range(3):
        breaker.before_call()
    assert breaker.state() is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpenError):
        breaker.before_call()  # a fourth trial is refused
    breaker.record_ignored()  # a 401 trial gives its slot back
    breaker.before_call()
    assert breaker.record_failure() is BreakerState.OPEN
    with pytest.raises(CircuitOpenError):
        breaker.before_call()


def test_breaker__success_in_closed_resets_the_consecutive_count(r: redis.Redis, prefix: str) -> None:
    breaker = _breaker(r, prefix)
    for _ in range(4):
        breaker.record_failure()
    breaker.record_success()
    for _ in range(4):
        assert breaker.record_failure() is BreakerState.CLOSED
    assert breaker.record_failure() is BreakerState.OPEN


def test_breaker__state_is_shared_between_instances(r: redis.Redis, prefix: str) -> None:
    worker_a, worker_b = _breaker(r, prefix), _breaker(r, prefix)
    for _ in range(5):
        worker_a.record_failure()
    with pytest.raises(CircuitOpenError):
        worker_b.before_call()
    time.sleep(FAST.open_seconds + 0.05)
    worker_b.before_call()
    worker_a.before_call()
    worker_a.record_success()
    assert worker_b.record_success() is BreakerState.CLOSED


def test_breaker__stale_half_open_trials_are_forgotten(r: redis.Redis, prefix: str) -> None:
    breaker = _breaker(r, prefix)
    for _ in range(5):
        breaker.record_failure()
    time.sleep(FAST.open_seconds + 0.05)
    for _ in range(3):
        breaker.before_call()  # three trials whose workers die without reporting
    time.sleep(FAST.open_seconds + 0.05)
    breaker.before_call()  # admitted again instead of stuck half-open forever


# --- rate limiter ---------------------------------------------------------------------------------


def _hammer(prefix: str, rate: float, start: float, deadline: float, out: multiprocessing.Queue) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    limiter = RateLimiter(
        client, "shared", rate_per_second=rate, burst=1, max_wait_seconds=5, key_prefix=f"{prefix}:rate"
    )
    time.sleep(max(0.0, start - time.time()))
    done = 0
    while time.time() < deadline:
        limiter.acquire()
        if time.time() <= deadline:
            done += 1
    out.put(done)


def test_rate_limiter__holds_one_global_rate_across_two_processes(prefix: str) -> None:
    rate, seconds = 20.0, 2.0
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()
    start = time.time() + 1.5  # let both interpreters start first
    procs = [ctx.Process(target=_hammer, args=(prefix, rate, start, start + seconds, out)) for _ in range(2)]
    for proc in procs:
        proc.start()
    counts = [out.get(timeout=30) for _ in procs]
    for proc in procs:
        proc.join(timeout=10)
        assert proc.exitcode == 0
    allowed = rate * seconds + 1  # refill over the window plus the burst
    assert sum(counts) <= allowed + 1, counts
    assert sum(counts) >= 0.85 * allowed, counts
    assert min(counts) >= 5, counts  # both processes really competed for the same bucket


def test_rate_limiter__wait_beyond_maximum_is_transient(r: redis.Redis, prefix: str) -> None:
    limiter = RateLimiter(
        r, "slow", rate_per_second=1.0, burst=1, max_wait_seconds=0.2, key_prefix=f"{prefix}:rate"
    )
    limiter.acquire()
    with pytest.raises(TransientError) as info:
        limiter.acquire()
    assert info.value.retry_after_seconds == 1


def test_rate_limiter__client_calls_are_paced(make_client: Callable[..., ClaimXClient]) -> None:
    client = make_client(rate=10.0)
    started = time.monotonic()
    for _ in range(12):  # 10-token burst, then 0.1 s per call
        client.get_project(5010002)
    assert time.monotonic() - started >= 0.15


# --- project cache --------------------------------------------------------------------------------


def _media_event(media: str, second: int):  # type: ignore[no-untyped-def]  # the parser's union return
    return parse_claimx_record(
        {
            "eventType": "PROJECT_FILE_ADDED",
            "projectId": "5010001",
            "mediaId": media,
            "IngestionTime": f"2026-01-05T17:01:{second:02d}Z",
        },
        kafka_timestamp=None,
    )


def test_project_cache__hit_avoids_a_second_project_fetch(
    make_client: Callable[..., ClaimXClient], sim: Simulator, r: redis.Redis, prefix: str
) -> None:
    client = make_client()
    cache = ProjectCache(r, ttl_seconds=60, key_prefix=f"{prefix}:project")
    first = handle(_media_event("880001", 1), client, now=NOW, cache=cache)
    second = handle(_media_event("880002", 2), client, now=NOW, cache=cache)
    assert isinstance(second, HandlerResult)
    assert (first.api_calls, second.api_calls) == (2, 1)
    assert sim.stats()["GET /export/project/{id}"] == 1
    assert second.rows.counts() == first.rows.counts()  # rows come from the cached body
    created = parse_claimx_record(LINES[0], kafka_timestamp=None)
    assert handle(created, client, now=NOW, cache=cache).api_calls == 1  # PROJECT_CREATED always fetches
    assert sim.stats()["GET /export/project/{id}"] == 2


def test_project_cache__entry_expires_after_ttl(r: redis.Redis, prefix: str) -> None:
    cache = ProjectCache(r, ttl_seconds=1, key_prefix=f"{prefix}:project")
    cache.put("5010001", {"data": {"project": {"projectId": 5010001}}})
    assert cache.get("5010001") == {"data": {"project": {"projectId": 5010001}}}
    time.sleep(1.2)
    assert cache.get("5010001") is None


def test_project_cache__disabled_never_stores(r: redis.Redis, prefix: str) -> None:
    cache = ProjectCache(r, ttl_seconds=60, enabled=False, key_prefix=f"{prefix}:project")
    cache.put("1", {"a": 1})
    assert cache.get("1") is None and list(r.scan_iter(match=f"{prefix}:project*")) == []


def test_project_cache__unreachable_redis_is_a_miss() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    cache = ProjectCache(dead, ttl_seconds=60)
    cache.put("1", {"a": 1})
    assert cache.get("1") is None


def test_api_config__refuses_a_missing_token() -> None:
    from core.errors import ConfigError
    from core.settings import load_settings

    with pytest.raises(ConfigError, match="CLAIMX_API_TOKEN"):
        ApiConfig.from_settings(load_settings(claimx_api_token=None))
    with pytest.raises(ConfigError):
        ApiConfig(base_url="https://x.example.com", token=SecretStr("  "))
