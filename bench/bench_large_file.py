"""Benchmark: one large attachment through the real download and upload code vs curl + cp + sync.

    python bench/bench_large_file.py [--mib 1024] [--repeat 3] [--dir DIR]

A local HTTP server (``sendfile``, 127.0.0.1) serves one file of ``--mib`` MiB; both sides fetch
it from that server, and every run starts with a ``sync`` (untimed) so no dirty page of the run
before is flushed on its clock. Runs are interleaved (baseline, pipeline, baseline, ...); the
figures are medians.

* pipeline (a child process, so its peak RSS is its own): ``core.download.download_to_file`` into
  the download cache (URL checks, DEV rewrite to the local server, streamed sha256), then
  ``writers.files.verified.upload_cached`` into a ``LocalFileStore`` (no-clobber publish, digest
  check, fsync): exactly what the ``download`` and ``upload`` tasks call. Cache and lake are on one
  file system, as in the default layout, so the upload publishes a hard link.
* baseline: ``curl -o`` from the same server, ``cp`` into a lake folder, ``sync``.

Prints MB/s (10^6 bytes/s) for each side and the ratio, upload alone vs ``cp`` + ``sync``, and
the pipeline's peak RSS. Targets (issue 9): ratio >= 0.9, peak RSS < 150 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "files.example.com"
NAME = "large.pdf"


class _SendFile(BaseHTTPRequestHandler):
    """``GET /<host>/<name>``: the file under the server's directory, body sent by ``sendfile``."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # http.server's naming
        path = Path(self.server.directory) / Path(self.path).name  # type: ignore[attr-defined]  # set by serve()
        with path.open("rb") as body:
            self.send_response(200)
            self.send_header("Content-Type", "application/pdf")
            self.send_header("Content-Length", str(os.fstat(body.fileno()).st_size))
            self.end_headers()
            self.wfile.flush()
            with contextlib.suppress(OSError):  # the client hung up
                self.connection.sendfile(body)


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """A sendfile HTTP server on 127.0.0.1 for ``directory``; yields its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _SendFile)
    httpd.daemon_threads = True
    httpd.directory = str(directory)  # type: ignore[attr-defined]  # read by the handler
    thread = threading.Thread(target=httpd.serve_forever, name="bench-files", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def make_file(path: Path, mib: int) -> None:
    """``mib`` MiB of incompressible bytes (a random 16 MiB block, varied per copy)."""
    block = bytearray(os.urandom(16 * 1024 * 1024))
    with path.open("wb") as out:
        for i in range(0, mib, 16):
            block[:8] = i.to_bytes(8, "little")
            out.write(block[: min(16, mib - i) * 1024 * 1024])


def run_baseline(base_url: str, work: Path) -> dict[str, float]:
    """curl -o, cp, sync (each a process, as a person would type them)."""
    fetched, lake = work / "curl.pdf", work / "baseline-lake"
    lake.mkdir(parents=True, exist_ok=True)
    subprocess.run(["sync"], check=True)
    started = time.perf_counter()
    subprocess.run(["curl", "-sS", "--fail", "-o", str(fetched), f"{base_url}/{HOST}/{NAME}"], check=True)
    downloaded = time.perf_counter()
    subprocess.run(["cp", str(fetched), str(lake / NAME)], check=True)
    subprocess.run(["sync"], check=True)
    done = time.perf_counter()
    return {"total_s": done - started, "download_s": downloaded - started, "upload_s": done - downloaded}


def run_pipeline(base_url: str, work: Path) -> dict[str, float]:
    """The pipeline side in a child process (its own peak RSS); returns its JSON report."""
    subprocess.run(["sync"], check=True)
    out = subprocess.run(
        [sys.executable, __file__, "--child", base_url, "--dir", str(work)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def pipeline_child(base_url: str, work: Path) -> dict[str, float]:
    """Download into the cache, then store in the lake, with the functions the tasks call."""
    sys.path.insert(0, str(ROOT))
    from core.cache import cache_file
    from core.download import DownloadPolicy, download_to_file, new_session
    from core.security.urls import UrlPolicy
    from domains.names import Domain
    from writers.files import LocalFileStore
    from writers.files.verified import upload_cached

    cache_root, lake = work / "cache", work / "lake"
    policy = DownloadPolicy(
        url_policy=UrlPolicy((HOST,), dev_simulator_url=base_url, dev_simulator_hosts=(HOST,)),
        max_bytes=8 * 1024**3,
        timeout_seconds=60,
        read_timeout_seconds=30,
        min_bytes_per_second=3_000_000,
        max_timeout_seconds=840,
    )
    session = new_session(pool_size=1)
    store = LocalFileStore(lake / "files")
    dest = cache_file(cache_root, "xact", "bench-media", f"run-{time.time_ns()}")
    started = time.perf_counter()
    result = download_to_file(session, f"https://{HOST}/{NAME}", dest, policy, expected_extension="pdf")
    downloaded = time.perf_counter()
    cached_inode = dest.stat().st_ino
    stored = upload_cached(
        store, cache_root, Domain.XACT, f"bench/{dest.parent.name}/{NAME}", str(dest),
        sha256=result.sha256, owner="xact:bench-media",
    )  # fmt: skip
    done = time.perf_counter()
    return {
        "total_s": done - started,
        "download_s": downloaded - started,
        "upload_s": done - downloaded,
        "bytes": result.bytes_downloaded,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "linked": float(Path(stored.destination).stat().st_ino == cached_inode),
    }


def measure(mib: int, repeat: int, directory: Path | None = None) -> dict[str, object]:
    """Interleaved runs of both sides; medians, ratio and the pipeline's peak RSS."""
    work = Path(tempfile.mkdtemp(prefix="bench-large-", dir=directory))
    try:
        source = work / "served"
        source.mkdir()
        make_file(source / NAME, mib)
        size = (source / NAME).stat().st_size
        runs: dict[str, list[dict[str, float]]] = {"baseline": [], "pipeline": []}
        with serve(source) as base_url:
            for i in range(repeat):
                for side in ("baseline", "pipeline") if i % 2 == 0 else ("pipeline", "baseline"):
                    run_dir = work / f"{side}-{i}"
                    run = (run_baseline if side == "baseline" else run_pipeline)(base_url, run_dir)
                    runs[side].append(run)
                    shutil.rmtree(run_dir, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def med(side: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[side])

    mbps = {side: size / med(side, "total_s") / 1e6 for side in runs}
    return {
        "mib": mib,
        "repeat": repeat,
        "bytes": size,
        "pipeline_mb_s": mbps["pipeline"],
        "baseline_mb_s": mbps["baseline"],
        "ratio": mbps["pipeline"] / mbps["baseline"],
        "pipeline_download_s": med("pipeline", "download_s"),
        "pipeline_upload_s": med("pipeline", "upload_s"),
        "baseline_curl_s": med("baseline", "download_s"),
        "baseline_cp_sync_s": med("baseline", "upload_s"),
        "pipeline_total_s": med("pipeline", "total_s"),
        "baseline_total_s": med("baseline", "total_s"),
        "peak_rss_mb": max(run["peak_rss_mb"] for run in runs["pipeline"]),
        "linked": all(run["linked"] for run in runs["pipeline"]),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary files go")
    parser.add_argument("--child", metavar="BASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(pipeline_child(args.child, args.dir)))
        return
    if shutil.which("curl") is None:
        sys.exit("curl is needed for the baseline")
    r = measure(args.mib, args.repeat, args.dir)
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)")
    print(f"{r['mib']} MiB, median of {r['repeat']} interleaved runs")
    print(
        f"pipeline (download + upload) {r['pipeline_total_s']:6.2f} s  {r['pipeline_mb_s']:7.1f} MB/s"
        f"   download {r['pipeline_download_s']:.2f} s, upload {r['pipeline_upload_s']:.2f} s"
    )
    print(
        f"baseline (curl + cp + sync)  {r['baseline_total_s']:6.2f} s  {r['baseline_mb_s']:7.1f} MB/s"
        f"   curl {r['baseline_curl_s']:.2f} s, cp + sync {r['baseline_cp_sync_s']:.2f} s"
    )
    print(f"upload published a hard link (no copy): {r['linked']}")
    print(
        f"ratio {r['ratio']:.2f}x (target >= 0.9)   pipeline peak RSS {r['peak_rss_mb']:.0f} MB (target < 150)"
    )


if __name__ == "__main__":
    main()
