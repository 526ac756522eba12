"""What a chaos run feeds the pipeline, and what those events imply (``scripts/chaos.py``).

:func:`build_plan` is pure and deterministic for a seed. It generates mixed xact and claimx events
with the simulator's generators and decides the faults, each with the outcome it implies:

* **xact attachments**: most download cleanly; some fail transiently and recover (the simulator
  answers 503, drops the connection or cuts the body, at most twice per file: fewer than the
  retries); some fail for good: a permanent 404 (a fault rule) or an expired presigned link (the
  download refuses it before any request). A permanent failure is one dead letter (key: media id)
  and one ``xact_attachments_failed`` row; no inventory row, no file.
* **claimx**: a few *poison projects* whose every ``/export/project/{id}…`` call answers 404
  (permanent): each of their events that needs the API is one enrich dead letter (key: event id).
  Other projects may answer 503 or 429 (``Retry-After``) at most twice (they recover), and some
  media links answer 403 once (an expiring link: the download re-issues it through the API).
* **poison records**: unparseable raw records on both topics; each must reach the domain's Kafka
  dead-letter topic. Some valid records are published twice (a redelivering upstream): they add
  nothing.

:func:`expectations` derives the expected keys of every table, the lake files and the dead letters
from the events and the permanent faults. The claimx entity rows are what the domain's pure
handlers make of each event given the simulator's answers (an in-process port to the simulated
API with the same permanent faults: no network, no Redis): the chaos run tests loss and
duplication under kills, the handlers' own tests pin their rows.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from domains.claimx.api import ApiConfig, ClaimXClient
from domains.claimx.api_errors import classify_status
from domains.claimx.handlers import handle
from domains.claimx.models import ClaimXEvent
from domains.claimx.tables import TABLES as CLAIMX_TABLES
from domains.names import Table
from domains.xact.models import parse_xact_record
from domains.xact.paths import plan_attachments
from simulator import generate, synthetic
from simulator.claimx_api import DEFAULT_TOKEN, ClaimxApi

FILE_PREFIX = f"/{generate.XACT_FILE_HOST}/synthetic/"
MEDIA_PREFIX = f"/{synthetic.MEDIA_HOST}/synthetic/"
EXPIRED_QUERY = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20200101%2Fus-east-1%2Fs3"
    "%2Faws4_request&X-Amz-Date=20200101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=" + "ab" * 32
)
KEYS = {spec.name: spec.keys for spec in CLAIMX_TABLES}


@dataclass
class Plan:
    """Everything one seed publishes and configures, in publishing order per domain."""

    seed: int
    xact_lines: list[bytes] = field(default_factory=list)
    claimx_lines: list[bytes] = field(default_factory=list)
    xact_poison: list[bytes] = field(default_factory=list)
    claimx_poison: list[bytes] = field(default_factory=list)
    xact_rows: list[dict[str, Any]] = field(default_factory=list)
    claimx_rows: list[dict[str, Any]] = field(default_factory=list)
    fault_rules: list[dict[str, Any]] = field(default_factory=list)
    """Simulator fault rules (``POST /_sim/faults``), permanent ones included."""
    dead_files: set[str] = field(default_factory=set)
    """xact attachment URLs that answer 404 for good."""
    poison_projects: set[int] = field(default_factory=set)
    replayed: int = 0
    """Valid records published twice."""

    @property
    def events(self) -> int:
        return len(self.xact_rows) + len(self.claimx_rows)


def _line(row: dict[str, Any]) -> bytes:
    return json.dumps(row, separators=(",", ":")).encode()


def _poison(domain: str, seed: int, count: int) -> list[bytes]:
    kinds = [
        lambda i: f'{{"traceId": "chaos-{seed}-{i}", "type": "verisk.claims'.encode(),  # truncated
        lambda i: f'["{domain}", {seed}, {i}]'.encode(),  # not an object
        lambda i: bytes([0xFF, 0xFE, i % 256, seed % 256]) * 16,  # binary junk
        lambda i: json.dumps({"poison": i, "seed": seed}).encode(),  # no type / eventType
    ]
    return [kinds[i % len(kinds)](i) for i in range(count)]


def _xact(plan: Plan, rng: random.Random, n: int) -> None:
    rows = generate.xact_events(n, attachments_per_event=2, file_size=1500, seed=plan.seed)
    for row in rows:
        roll = rng.random()
        keep = 0 if roll < 0.15 else 1 if roll < 0.5 else 2
        urls = row["data"]["attachments"][:keep]
        for j, url in enumerate(urls):
            path = url.split("://", 1)[1]
            fate = rng.random()
            if fate < 0.03:  # a link that is gone for good
                plan.fault_rules.append({"path_prefix": "/" + path, "status": 404})
                plan.dead_files.add(url)
            elif fate < 0.05:  # an expired presigned link
                urls[j] = f"{url}?{EXPIRED_QUERY}"
            elif fate < 0.10:  # fails, then recovers (never more often than the retries)
                rule: dict[str, Any] = rng.choice(
                    [
                        {"status": 503, "times": 2},
                        {"close_connection": True, "times": 1},
                        {"truncate_at": 100, "times": 1},
                    ]
                )
                plan.fault_rules.append({"path_prefix": "/" + path, **rule})
        row["data"]["attachments"] = urls
    plan.xact_rows = rows
    plan.xact_lines = [_line(r) for r in rows]


def _claimx(plan: Plan, rng: random.Random, n: int) -> None:
    projects = max(4, n // 20)
    rows = generate.claimx_events(n, projects=projects, seed=plan.seed)
    ids = sorted({int(r["projectId"]) for r in rows})
    plan.poison_projects = set(rng.sample(ids, max(1, len(ids) // 20)))
    for pid in ids:
        if pid in plan.poison_projects:
            plan.fault_rules.append({"path_prefix": f"/export/project/{pid}", "status": 404})
        elif rng.random() < 0.3:
            rule = rng.choice([{"status": 503}, {"status": 429, "retry_after": 1}])
            plan.fault_rules.append({"path_prefix": f"/export/project/{pid}", "times": 2, **rule})
    media = sorted({(int(r["projectId"]), int(r["mediaId"])) for r in rows if r["mediaId"]})
    for pid, mid in media:
        if pid not in plan.poison_projects and rng.random() < 0.1:  # an expiring link, re-issued
            plan.fault_rules.append({"path_prefix": f"{MEDIA_PREFIX}{pid}/{mid}/", "status": 403, "times": 1})
    plan.claimx_rows = rows
    plan.claimx_lines = [_line(r) for r in rows]


def build_plan(seed: int, events: int) -> Plan:
    """``events`` valid events (about 55 % xact, 45 % claimx) plus ~1 % poison records per domain."""
    rng = random.Random(f"chaos:{seed}")
    plan = Plan(seed=seed)
    n_xact = events * 55 // 100
    _xact(plan, rng, n_xact)
    _claimx(plan, rng, events - n_xact)
    plan.xact_poison = _poison("xact", seed, max(2, n_xact // 100))
    plan.claimx_poison = _poison("claimx", seed, max(2, (events - n_xact) // 100))
    replay = max(1, events // 100)
    plan.xact_lines += rng.sample(plan.xact_lines, min(replay, len(plan.xact_lines)))
    plan.claimx_lines += rng.sample(plan.claimx_lines, min(replay, len(plan.claimx_lines)))
    plan.replayed = 2 * replay
    return plan


# --- what the events imply -------------------------------------------------------------------


@dataclass
class Expected:
    """Expected keys per table, lake files (domain -> blob path -> source URL) and dead letters
    (domain -> set of keys)."""

    rows: dict[str, set[tuple[str, ...]]] = field(default_factory=dict)
    files: dict[str, dict[str, str]] = field(default_factory=dict)
    """xact: blob path -> URL. claimx: media id -> URL (the blob path is read from its row)."""
    dead_letters: dict[str, set[str]] = field(default_factory=dict)
    kafka_dlq: dict[str, list[bytes]] = field(default_factory=dict)


class _LocalApi(ClaimXClient):
    """The real client's unwrapping over the simulator's API answered in process, with the plan's
    permanent faults. Never sends a request."""

    def __init__(self, dead_prefixes: list[str]) -> None:  # no session, breaker or limiter
        self.config = ApiConfig(base_url="http://simulator.invalid", token=SecretStr(DEFAULT_TOKEN))
        self._api = ClaimxApi()
        self._dead = dead_prefixes

    def _request(self, method: str, endpoint: str, *, query=None, json_body=None) -> Any:  # type: ignore[override]  # answers from the simulator's API in process
        path = "/" + endpoint.lstrip("/")
        qs = "&".join(f"{quote(k)}={quote(v, safe=',')}" for k, v in (query or {}).items())
        if any(path.startswith(prefix) for prefix in self._dead):
            raise classify_status(404, path)
        answer = self._api.handle(method, path, qs, f"Basic {DEFAULT_TOKEN}", json_body)
        if answer.status != 200:
            raise classify_status(answer.status, path)
        return json.loads(answer.body)


def _key(row: dict[str, Any], columns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(str(row.get(c)) for c in columns)


def expectations(plan: Plan) -> Expected:
    """The rows, files and dead letters ``plan``'s events imply (see the module docstring)."""
    exp = Expected()
    _xact_expectations(plan, exp)
    _claimx_expectations(plan, exp)
    exp.kafka_dlq = {"xact": plan.xact_poison, "claimx": plan.claimx_poison}
    return exp


def _xact_expectations(plan: Plan, exp: Expected) -> None:
    events: set[tuple[str, ...]] = set()
    stored: set[tuple[str, ...]] = set()
    failed: set[tuple[str, ...]] = set()
    files: dict[str, str] = {}
    letters: set[str] = set()
    for raw in plan.xact_lines:
        event = parse_xact_record(raw)
        events.add((event.trace_id,))
        for item in plan_attachments(event):
            url = item.attachment_url
            if url in plan.dead_files or EXPIRED_QUERY in url:
                failed.add((item.media_id,))
                letters.add(item.media_id)
            else:
                stored.add((item.media_id,))
                files[item.blob_path] = url
    exp.rows[Table.XACT_EVENTS.value] = events
    exp.rows[Table.XACT_ATTACHMENTS.value] = stored
    exp.rows[Table.XACT_ATTACHMENTS_FAILED.value] = failed
    exp.files["xact"] = files
    exp.dead_letters["xact"] = letters


def _claimx_expectations(plan: Plan, exp: Expected) -> None:
    from domains.claimx.canvas import parse

    api = _LocalApi([f"/export/project/{pid}" for pid in plan.poison_projects])
    rows: dict[str, set[tuple[str, ...]]] = {spec.name.value: set() for spec in CLAIMX_TABLES}
    media_urls: dict[str, str] = {}
    letters: set[str] = set()
    now = datetime.now(UTC)
    for raw in plan.claimx_lines:
        parsed = parse(raw, None)
        event: ClaimXEvent = parsed.event
        rows[Table.CLAIMX_EVENTS.value].add((parsed.event_id,))
        try:
            result = handle(event, api, now=now, cache=None)
        except Exception:  # noqa: BLE001 - any handler failure here is a permanent API fault
            letters.add(parsed.event_id)
            continue
        for table, table_rows in result.rows.by_table().items():
            for row in table_rows:
                rows[table.value].add(_key(row, KEYS[table]))
        for row in result.rows.media:
            if row.get("full_download_link"):
                media_urls[str(row["media_id"])] = row["full_download_link"]
    rows[Table.CLAIMX_ATTACHMENTS.value] = {(m,) for m in media_urls}
    exp.rows.update(rows)
    exp.files["claimx"] = media_urls
    exp.dead_letters["claimx"] = letters
