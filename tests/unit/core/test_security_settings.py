"""Security defaults of the settings (issue 7 items 11, 12, 14): development routing cannot leak
into production, ClaimX is https, the visibility timeout exceeds the time limit, the cache is not in /tmp."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.security.urls import UrlPolicy
from core.settings import load_settings

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5:8765",
        "https://simulator.example.com",
        "http://0.0.0.0:80",
        "ftp://127.0.0.1:21",
        "junk",
    ],
)
def test_dev_simulator_url__refused_unless_loopback(url: str) -> None:
    with pytest.raises(ConfigError, match="DEV_SIMULATOR_URL must be a loopback URL"):
        load_settings(dev_simulator_url=url)
    with pytest.raises(ConfigError):
        UrlPolicy(allowed_hosts=("files.example.com",), dev_simulator_url=url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8765", "http://localhost:1/", "http://[::1]:9/"])
def test_dev_simulator_url__loopback_accepted(url: str) -> None:
    assert load_settings(dev_simulator_url=url).dev_simulator_url == url


def test_dev_simulator_url__logs_a_warning_at_start_up() -> None:
    code = "from core.settings import get_settings; get_settings()"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEV_", "CLAIMX_"))}
    quiet = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert quiet.returncode == 0 and "DEVELOPMENT ROUTING" not in quiet.stderr
    env["DEV_SIMULATOR_URL"] = "http://127.0.0.1:8765"
    loud = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert loud.returncode == 0, loud.stderr
    assert "DEVELOPMENT ROUTING IS ON: DEV_SIMULATOR_URL=http://127.0.0.1:8765" in loud.stderr


@pytest.mark.parametrize(
    "overrides",
    [
        {"claimx_api_url": "http://www.claimxperience.com/service/cxedirest"},
        {"claimx_api_url": "http://127.0.0.1:9/claimx"},  # loopback, but not in development
        {"claimx_api_url": "http://api.example.com/x", "dev_simulator_url": "http://127.0.0.1:9"},
        {"claimx_api_url": "ftp://www.claimxperience.com/"},
    ],
)
def test_claimx_api_url__must_be_https_outside_development(overrides: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="CLAIMX_API_URL must be https"):
        load_settings(**overrides)


def test_claimx_api_url__plain_http_to_loopback_simulator_in_development() -> None:
    s = load_settings(claimx_api_url="http://127.0.0.1:9/claimx", dev_simulator_url="http://127.0.0.1:9")
    assert s.claimx_api_url == "http://127.0.0.1:9/claimx"


def test_visibility_timeout__bounded_by_the_task_time_limit_alone() -> None:
    """Retries wait in the durable schedule, not in the broker: a 4000 s retry delay does not
    force a visibility timeout above it; the time limit does."""
    args = {"retry_delays_seconds": "4000", "task_time_limit_seconds": 900}
    assert load_settings(**args, visibility_timeout_seconds=1000).visibility_timeout_seconds == 1000
    with pytest.raises(ConfigError, match="VISIBILITY_TIMEOUT_SECONDS=900"):
        load_settings(**args, visibility_timeout_seconds=900)


def test_cache_dir__default_is_not_a_world_writable_place() -> None:
    cache = load_settings().cache_dir
    assert not str(cache).startswith(("/tmp", "/var/tmp", "/dev/shm"))


def test_attachment_ports__default_443_only_and_validated() -> None:
    assert load_settings().allowed_attachment_ports == [443]
    assert load_settings(allowed_attachment_ports="443,8443").allowed_attachment_ports == [443, 8443]
    with pytest.raises(ConfigError, match="ALLOWED_ATTACHMENT_PORTS"):
        load_settings(allowed_attachment_ports="0")
