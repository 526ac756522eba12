"""Benchmark: ClaimX API requests per event with the shared project cache on and off.

    python bench/bench_api_economy.py [--events 1000] [--projects 50] [--seed 1] [--target 0.6]

Runs the same synthetic claimx stream (``generate.claimx_events``) through the whole pipeline twice
(simulator, Celery workers, Beat, dispatcher, Kafka, a private Redis, Delta in a temp dir): with
``PROJECT_CACHE_ENABLED=true`` and with ``false`` (the baseline: the project is fetched again for
every event). The simulator counts each ClaimX API request. Prints requests/event for both runs,
per endpoint, and the ratio; exits 1 when the ratio misses ``--target`` or the runs' rows differ.
Needs the local stack (Kafka on 127.0.0.1:9092) and ``redis-server`` on PATH.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator import generate  # noqa: E402 - after the path setup
from tests.e2e.test_api_economy import ApiEconomy, check_fresh, measure_api_calls  # noqa: E402 - after the path setup

PROJECT_ENDPOINT = "GET /export/project/{id}"


def _report(on: ApiEconomy, off: ApiEconomy) -> None:
    endpoints = sorted(set(on.by_endpoint) | set(off.by_endpoint))
    width = max(len(e) for e in endpoints) + 2
    print(f"{'endpoint':<{width}}{'cache on':>10}{'cache off':>11}")
    for endpoint in endpoints:
        on_calls, off_calls = on.by_endpoint.get(endpoint, 0), off.by_endpoint.get(endpoint, 0)
        print(f"{endpoint:<{width}}{on_calls:>10}{off_calls:>11}")
    print(f"{'total requests':<{width}}{on.api_requests:>10}{off.api_requests:>11}")
    print(f"{'requests/event':<{width}}{on.per_event:>10.3f}{off.per_event:>11.3f}")
    print(f"{'seconds (dispatch start to idle)':<{width}}{on.seconds:>10.1f}{off.seconds:>11.1f}")
    print(f"{'dead letters':<{width}}{on.dead_letters:>10}{off.dead_letters:>11}")
    for run in (on, off):
        for letter in run.letters:
            print(f"  dead letter (cache {'on' if run.cache_enabled else 'off'}): {letter}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--target", type=float, default=0.6, help="maximum on/off request ratio")
    parser.add_argument("--ttl", type=int, default=3600, help="PROJECT_CACHE_TTL_SECONDS")
    args = parser.parse_args(argv)

    rows = generate.claimx_events(args.events, projects=args.projects, seed=args.seed)
    kinds: dict[str, int] = {}
    for row in rows:
        kinds[row["eventType"]] = kinds.get(row["eventType"], 0) + 1
    print(
        f"# {args.events} claimx events over {args.projects} projects (seed {args.seed}); "
        f"{platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print("# event mix: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        on = measure_api_calls(Path(tmp) / "on", rows, cache_enabled=True, ttl_seconds=args.ttl)
        off = measure_api_calls(Path(tmp) / "off", rows, cache_enabled=False, ttl_seconds=args.ttl)
    _report(on, off)
    ratio = on.api_requests / off.api_requests
    project_ratio = on.by_endpoint.get(PROJECT_ENDPOINT, 0) / max(1, off.by_endpoint.get(PROJECT_ENDPOINT, 0))
    print(f"ratio on/off: {ratio:.3f} (target <= {args.target}); project fetches only: {project_ratio:.3f}")
    failures = []
    if ratio > args.target:
        failures.append(f"ratio {ratio:.3f} above target {args.target}")
    if on.rows != off.rows:
        failures.append(f"rows differ: on {on.rows} off {off.rows}")
    try:
        check_fresh(on, args.ttl)
        print(
            f"freshness: all {len(on.project_updated_at)} claimx_projects.updated_at values lie within the "
            f"run ({(on.finished_at - on.started_at).total_seconds():.0f} s < TTL {args.ttl} s)"
        )
    except AssertionError as exc:
        failures.append(f"freshness: {exc}")
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
