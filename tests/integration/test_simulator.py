"""The simulator over real HTTP: sample routes, auth, faults, delays, counters, files, streaming."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from simulator import DEFAULT_TOKEN, Simulator, SimulatorClient, expected_bytes
from simulator.claimx_api import DEFAULT_SAMPLES_DIR
from simulator.files import file_spec, iter_content

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
AUTH = {"Authorization": f"Basic {DEFAULT_TOKEN}"}
INDEX = json.loads((DEFAULT_SAMPLES_DIR / "index.json").read_text())
XN = "https://xn-exportreceiver.s3.example.com"
# Attachment URLs of samples/xact_events.jsonl that the pipeline downloads.
XACT_SAMPLE_URLS = [
    f"{XN}/exports/A-7100451/3f9b2c1e/Inspection_Report.pdf",
    f"{XN}/exports/A-7100451/3f9b2c1e/front_elevation.jpg",
    f"{XN}/exports/A-7100451/3f9b2c1e/roof_sketch.xml",
    f"{XN}/exports/A-7100452/3f9b2c1e/Proof_Of_Loss.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
    "AKIAEXAMPLEKEY%2F20991231%2Fus-west-2%2Fs3%2Faws4_request&X-Amz-Date=20991231T000000Z&X-Amz-Expires="
    "604800&X-Amz-SignedHeaders=host&X-Amz-Signature=0b1c",
    f"{XN}/exports/A-7100451/est/estimate.esx",
    f"{XN}/exports/A-7100461/PHOTO_0001.JPG",
    f"{XN}/download/7c1e2b90-2f7d-4b8a-9d6e-5a4b3c2d1e0f?filename=fnol_statement.pdf&download=true",
    f"{XN}/exports/A-7100464/water%20damage%20closeup.png",
]


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator() as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def _clean(sim: Simulator) -> None:
    sim.clear_faults()
    sim.reset_stats()


def _api(sim: Simulator, path: str, **kwargs: Any) -> requests.Response:
    return requests.get(sim.api_base_url + path, headers=AUTH, timeout=5, **kwargs)


def _media(sim: Simulator, project: int, query: str = "") -> list[dict[str, Any]]:
    response = _api(sim, f"/export/project/{project}/media{query}")
    assert response.status_code == 200
    return list(response.json()["data"])


@pytest.mark.parametrize(
    "route", INDEX["routes"], ids=lambda r: f"{r['method']} {r['path']} {r.get('query', '')}"
)
def test_http__every_sample_route_serves_its_file(sim: Simulator, route: dict[str, Any]) -> None:
    url = sim.api_base_url + route["path"]
    response = requests.request(
        route["method"], url, params=route.get("query"), json=route.get("body_match"), headers=AUTH, timeout=5
    )
    assert response.status_code == route["status"]
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == json.loads((DEFAULT_SAMPLES_DIR / route["file"]).read_text())


def test_http__media_ids_filter(sim: Simulator) -> None:
    assert [m["mediaID"] for m in _media(sim, 5010001, "?mediaIds=880004,880001,123")] == [880001, 880004]
    assert len(_media(sim, 5010001)) == 4


def test_http__api_without_or_with_wrong_token_is_401(sim: Simulator) -> None:
    url = sim.api_base_url + "/export/project/5010001"
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, headers={"Authorization": "Basic eDp5"}, timeout=5).status_code == 401


def test_http__custom_token_is_enforced() -> None:
    with Simulator(token="b3RoZXI6dG9rZW4=") as other:
        url = other.api_base_url + "/export/project/5010001"
        assert requests.get(url, headers=AUTH, timeout=5).status_code == 401
        ok = requests.get(url, headers={"Authorization": "Basic b3RoZXI6dG9rZW4="}, timeout=5)
        assert ok.status_code == 200


@pytest.mark.parametrize("url", XACT_SAMPLE_URLS)
def test_http__sample_attachment_bytes_equal_expected_bytes(sim: Simulator, url: str) -> None:
    response = requests.get(sim.local_url(url), timeout=5)
    assert response.status_code == 200
    assert response.content == expected_bytes(url)
    assert int(response.headers["Content-Length"]) == len(response.content) == 2048


def test_http__content_types_match_the_expectations(sim: Simulator) -> None:
    types = {
        url.rsplit("/", 1)[1][:12]: requests.head(sim.local_url(url), timeout=5).headers["Content-Type"]
        for url in XACT_SAMPLE_URLS
    }
    assert types["estimate.esx"] == "application/octet-stream"  # must fail validation
    assert types["PHOTO_0001.J"] == "image/jpeg"
    assert types["roof_sketch."] == "application/xml"
    assert types["7c1e2b90-2f7"] == "application/pdf"


def test_http__claimx_sample_media_links_serve_and_the_expired_one_is_403(sim: Simulator) -> None:
    served = {}
    for item in _media(sim, 5010001) + _media(sim, 5010002):
        response = requests.get(sim.local_url(item["fullDownloadLink"]), timeout=5)
        served[item["mediaID"]] = response.status_code
        if response.status_code == 200:
            assert response.content == expected_bytes(item["fullDownloadLink"])
        else:
            assert response.headers["Content-Type"] == "application/xml"
            assert b"<Code>AccessDenied</Code>" in response.content
    assert served == {880001: 200, 880002: 200, 880003: 403, 880004: 200, 880101: 200}


def test_http__refreshed_880003_link_serves_the_mp4(sim: Simulator) -> None:
    [item] = _media(sim, 5010001, "?mediaIds=880003")
    response = requests.get(sim.local_url(item["fullDownloadLink"]), timeout=5)
    assert response.status_code == 200 and response.headers["Content-Type"] == "video/mp4"
    assert response.content[4:8] == b"ftyp"
    assert response.content == expected_bytes(item["fullDownloadLink"])


def test_http__synthetic_project_media_link_serves_its_size(sim: Simulator) -> None:
    [item] = _media(sim, 6000002, "?mediaIds=9000021")
    response = requests.get(sim.local_url(item["fullDownloadLink"]), timeout=5)
    assert response.status_code == 200 and len(response.content) == 2048


def test_http__unknown_file_host_and_project_are_404(sim: Simulator) -> None:
    assert requests.get(sim.base_url + "/untrusted.example.net/a.pdf", timeout=5).status_code == 404
    assert _api(sim, "/export/project/1234567").status_code == 404


def test_http__head_has_length_and_no_body(sim: Simulator) -> None:
    response = requests.head(sim.local_url(XACT_SAMPLE_URLS[0]), timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "2048" and response.content == b""


def test_http__byte_range_is_206(sim: Simulator) -> None:
    url = XACT_SAMPLE_URLS[0]
    response = requests.get(sim.local_url(url), headers={"Range": "bytes=100-199"}, timeout=5)
    assert response.status_code == 206 and response.headers["Content-Range"] == "bytes 100-199/2048"
    assert response.content == expected_bytes(url)[100:200]


def test_http__redirect_and_redirect_loop(sim: Simulator) -> None:
    target = "https://files.example.com/exports/a.pdf?x=1"
    response = requests.get(
        f"{sim.base_url}/files.example.com/redirect?to={quote(target, safe='')}",
        allow_redirects=False,
        timeout=5,
    )
    assert response.status_code == 302 and response.headers["Location"] == target
    loop = requests.get(f"{sim.base_url}/files.example.com/redirect-loop/4", allow_redirects=False, timeout=5)
    assert loop.status_code == 302
    assert loop.headers["Location"] == "https://files.example.com/redirect-loop/4"


def test_faults__fire_times_then_clear_over_the_control_api(sim: Simulator) -> None:
    client = SimulatorClient(sim.base_url)
    assert client.healthy()
    client.set_fault("/export/project/5010001", method="GET", status=429, retry_after=2, times=3)
    statuses = [_api(sim, "/export/project/5010001") for _ in range(4)]
    assert [r.status_code for r in statuses] == [429, 429, 429, 200]
    assert statuses[0].headers["Retry-After"] == "2"
    assert client.faults() == []


def test_faults__status_body_and_until_cleared(sim: Simulator) -> None:
    sim.set_fault("/files.example.com/", status=503, body="busy")
    for _ in range(3):
        response = requests.get(sim.local_url("https://files.example.com/synthetic/1/10/a.pdf"), timeout=5)
        assert (response.status_code, response.text) == (503, "busy")
    sim.clear_faults()
    assert requests.get(sim.local_url("https://files.example.com/synthetic/1/10/a.pdf"), timeout=5).ok


@pytest.mark.parametrize("status", [500, 503, 401])
def test_faults__api_statuses(sim: Simulator, status: int) -> None:
    sim.set_fault("/customTasks/", status=status, times=1)
    assert _api(sim, "/customTasks/assignment/7700001", params={"full": "true"}).status_code == status
    assert _api(sim, "/customTasks/assignment/7700001", params={"full": "true"}).status_code == 200


def test_faults__delay_exceeds_client_timeout_once(sim: Simulator) -> None:
    sim.set_fault("/export/project/5010002", delay_seconds=1.5, times=1)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(sim.api_base_url + "/export/project/5010002", headers=AUTH, timeout=0.3)
    assert time.monotonic() - started < 1.4
    assert _api(sim, "/export/project/5010002").status_code == 200


def test_faults__close_connection_and_truncated_body(sim: Simulator) -> None:
    url = sim.local_url("https://files.example.com/synthetic/t/300000/big.pdf")
    sim.set_fault("/files.example.com/synthetic/t/", close_connection=True, times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url, timeout=5)
    sim.set_fault("/files.example.com/synthetic/t/", truncate_at=1000, times=1)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        requests.get(url, timeout=5)
    assert len(requests.get(url, timeout=5).content) == 300000


def test_faults__malformed_rule_is_400(sim: Simulator) -> None:
    response = requests.post(sim.base_url + "/_sim/faults", json={"rule": {"path_prefix": "nope"}}, timeout=5)
    assert response.status_code == 400


def test_stats__count_normalised_endpoints_and_reset(sim: Simulator) -> None:
    _api(sim, "/export/project/5010001")
    _api(sim, "/export/project/5010002")
    _api(sim, "/export/project/5010001/media", params={"mediaIds": "880001"})
    _api(sim, "/customTasks/assignment/7700001", params={"full": "true"})
    requests.post(
        sim.api_base_url + "/data",
        json={"reportType": "VIDEO_COLLABORATION", "projectId": 5010001},
        headers=AUTH,
        timeout=5,
    )
    requests.get(sim.local_url(XACT_SAMPLE_URLS[0]), timeout=5)
    requests.get(sim.local_url(XACT_SAMPLE_URLS[0]), timeout=5)
    client = SimulatorClient(sim.base_url)
    assert client.stats() == {
        "GET /export/project/{id}": 2,
        "GET /export/project/{id}/media": 1,
        "GET /customTasks/assignment/{id}": 1,
        "POST /data VIDEO_COLLABORATION": 1,
        "files": 2,
    }
    assert client.file_stats() == {
        "/xn-exportreceiver.s3.example.com/exports/A-7100451/3f9b2c1e/Inspection_Report.pdf": 2
    }
    client.reset_stats()
    assert sim.stats() == {}


def test_stats__faulted_requests_are_counted_too(sim: Simulator) -> None:
    sim.set_fault("/export/project/", status=500, times=2)
    for _ in range(3):
        _api(sim, "/export/project/5010001")
    assert sim.stats() == {"GET /export/project/{id}": 3}


def test_stop__wakes_delayed_requests_promptly() -> None:
    other = Simulator().start()
    other.set_fault("/", delay_seconds=30)
    started = time.monotonic()
    other.stop()
    assert time.monotonic() - started < 5


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_cli_serve__streams_100_mb_without_growing_rss() -> None:
    """A standalone server streams a 100 MB file in chunks: its peak RSS grows far less than 100 MB."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "serve", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        client = SimulatorClient(base_url)
        client.file_stats()  # warm up the request path before the baseline
        before = _peak_rss_kib(proc.pid)
        size = 100 * 1024 * 1024
        host_and_path = f"files.example.com/synthetic/rss/{size}/walkthrough.mp4"
        digest = hashlib.sha256()
        with requests.get(f"{base_url}/{host_and_path}", stream=True, timeout=30) as response:
            assert response.status_code == 200 and int(response.headers["Content-Length"]) == size
            received = 0
            for chunk in response.iter_content(1024 * 1024):
                digest.update(chunk)
                received += len(chunk)
        assert received == size
        growth_mib = (_peak_rss_kib(proc.pid) - before) / 1024
        assert growth_mib < 30, f"server peak RSS grew {growth_mib:.1f} MiB"
        spec = file_spec(host_and_path)
        assert spec is not None
        expected = hashlib.sha256()
        for chunk in iter_content(spec):
            expected.update(chunk)
        assert digest.hexdigest() == expected.hexdigest()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_cli_generators_write_jsonl(tmp_path: Path) -> None:
    for command, extra in (("gen-xact", ["--size", "4096"]), ("gen-claimx", ["--projects", "7"])):
        out = tmp_path / f"{command}.jsonl"
        subprocess.run(
            [sys.executable, "-m", "simulator", command, "25", str(out), *extra],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(rows) == 25
    xact = [json.loads(line) for line in (tmp_path / "gen-xact.jsonl").read_text().splitlines()]
    assert all("/4096/" in url for row in xact for url in row["data"]["attachments"])
    claimx = [json.loads(line) for line in (tmp_path / "gen-claimx.jsonl").read_text().splitlines()]
    assert len({row["projectId"] for row in claimx}) <= 7


def test_http__keep_alive_responses_are_not_held_back_by_delayed_acks(sim: Simulator) -> None:
    """Issue 9: the server sends with TCP_NODELAY, as real web servers do. Without it, a body written
    after its headers waited for the client's delayed ACK: ~44 ms per keep-alive response here,
    which made every download in the end-to-end bench wait on the simulator."""
    with requests.Session() as session:
        url = sim.api_base_url + "/export/project/5010001/media"
        assert session.get(url, headers=AUTH, timeout=5).status_code == 200  # connection open
        started = time.perf_counter()
        for _ in range(20):
            assert session.get(url, headers=AUTH, timeout=5).status_code == 200
        per_request = (time.perf_counter() - started) / 20
    assert per_request < 0.015, f"{per_request * 1000:.1f} ms per keep-alive request"
