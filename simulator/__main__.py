"""Command line: ``python -m simulator {serve,gen-xact,gen-claimx} ...``.

* ``serve --port 8765 [--token T] [--file-size B] [--media-bytes B]``: prints the base URL on the
  first line and the ClaimX API base URL on the second, then serves until SIGTERM/SIGINT.
* ``gen-xact N OUT.jsonl [--size BYTES] [--attachments K] [--seed S]``
* ``gen-claimx N OUT.jsonl [--projects P] [--media-per-project M] [--seed S]``
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from simulator import files, synthetic
from simulator.claimx_api import DEFAULT_SAMPLES_DIR, DEFAULT_TOKEN
from simulator.control import Simulator
from simulator.generate import claimx_events, xact_events


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the simulator on 127.0.0.1 until SIGTERM/SIGINT")
    serve.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    serve.add_argument("--token", default=DEFAULT_TOKEN, help="expected ClaimX Basic token")
    serve.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES_DIR, help="claimx_api sample dir")
    serve.add_argument(
        "--file-size", type=int, default=files.DEFAULT_SIZE_BYTES, help="bytes of non-synthetic files"
    )
    serve.add_argument(
        "--media-bytes", type=int, default=files.DEFAULT_SIZE_BYTES, help="bytes of synthetic ClaimX media"
    )
    serve.add_argument(
        "--media-per-project",
        type=int,
        default=synthetic.MEDIA_SLOTS,
        help="media in a synthetic project's full media list",
    )
    gx = sub.add_parser("gen-xact", help="write N synthetic xact rows as JSON lines")
    gx.add_argument("n", type=int)
    gx.add_argument("out", type=Path)
    gx.add_argument("--size", type=int, default=2048, help="bytes per attachment")
    gx.add_argument("--attachments", type=int, default=2, help="attachments per event")
    gx.add_argument("--seed", type=int, default=1)
    gc = sub.add_parser("gen-claimx", help="write N synthetic claimx rows as JSON lines")
    gc.add_argument("n", type=int)
    gc.add_argument("out", type=Path)
    gc.add_argument("--projects", type=int, default=50)
    gc.add_argument("--media-per-project", type=int, default=5)
    gc.add_argument("--seed", type=int, default=1)
    return parser


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, separators=(",", ":")) + "\n")
            count += 1
    return count


def _serve(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    sim = Simulator(
        args.port,
        args.token,
        samples_dir=args.samples,
        file_size=args.file_size,
        media_bytes=args.media_bytes,
        media_per_project=args.media_per_project,
    ).start()
    try:
        print(sim.base_url, flush=True)
        print(sim.api_base_url, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "gen-xact":
        rows = xact_events(
            args.n, attachments_per_event=args.attachments, file_size=args.size, seed=args.seed
        )
    else:
        rows = claimx_events(
            args.n, projects=args.projects, media_per_project=args.media_per_project, seed=args.seed
        )
    written = _write_jsonl(args.out, rows)
    print(f"wrote {written} rows to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
