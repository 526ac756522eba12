"""Downloader logic that needs no server: status classification (SPEC §6.2), checks that fail before
any request is made, write-error classification, policy and session construction."""

from __future__ import annotations

import errno
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
import requests

from core import download
from core.download import DownloadPolicy, classify_http_status, download_to_file, new_session
from core.errors import ErrorCategory, PermanentError, TransientError
from core.security.urls import UrlPolicy, UrlRejected
from core.settings import load_settings

T, A, P, U = ErrorCategory.TRANSIENT, ErrorCategory.AUTH, ErrorCategory.PERMANENT, ErrorCategory.UNKNOWN


@pytest.mark.parametrize(
    "status, category",
    [
        (201, U),
        (202, U),
        (204, U),
        (206, U),
        (299, U),
        (302, A),
        (401, A),
        (429, T),
        (400, P),
        (403, P),
        (404, P),
        (405, P),
        (410, P),
        (422, P),
        (418, P),
        (499, P),
        (500, T),
        (501, T),
        (502, T),
        (503, T),
        (504, T),
        (599, T),
        (100, U),
        (301, U),
        (304, U),
        (600, U),
    ],
)
def test_classify_http_status__spec_table(status: int, category: ErrorCategory) -> None:
    assert classify_http_status(status) is category


class _NoNetwork(requests.Session):
    """A session that fails the test if the downloader tries to send anything."""

    def request(self, *args: object, **kwargs: object) -> requests.Response:  # type: ignore[override]  # any call fails
        raise AssertionError("no request may be made")


POLICY = DownloadPolicy(
    url_policy=UrlPolicy(allowed_hosts=("files.example.com",), resolve_dns=False),
    max_bytes=1024,
    timeout_seconds=5,
    read_timeout_seconds=2,
)
EXPIRED = (
    "https://files.example.com/a/contents_list.pdf?X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600"
    "&X-Amz-Signature=0b1c2d3e4f"
)


def _fails_before_request(
    url: str, tmp_path: Path, policy: DownloadPolicy = POLICY, **kw: object
) -> PermanentError:
    dest = tmp_path / "out" / "file.pdf"
    with pytest.raises(PermanentError) as info:
        download_to_file(_NoNetwork(), url, dest, policy, **kw)  # type: ignore[arg-type]  # test knobs
    assert not dest.parent.exists()
    return info.value


def test_download__disallowed_host_rejected_before_request(tmp_path: Path) -> None:
    err = _fails_before_request("https://untrusted.example.net/a/invoice.pdf", tmp_path)
    assert isinstance(err, UrlRejected)
    assert str(err) == "URL validation failed: Domain not in allowlist: untrusted.example.net"


def test_download__plain_http_rejected_before_request(tmp_path: Path) -> None:
    err = _fails_before_request("http://files.example.com/a/plain_http.pdf", tmp_path)
    assert str(err) == "URL validation failed: Must be HTTPS, got http"


def test_download__expired_presigned_url_is_permanent_without_signature_in_message(tmp_path: Path) -> None:
    err = _fails_before_request(EXPIRED, tmp_path)
    assert str(err) == (
        "Presigned URL expired at 2024-01-01T01:00:00+00:00 (signed at 2024-01-01T00:00:00+00:00)"
    )


def test_download__expiry_check_can_be_disabled(tmp_path: Path) -> None:
    """With the check off the expired URL gets past it and fails only later, on the extension."""
    policy = DownloadPolicy(POLICY.url_policy, 1024, 5, 2, check_presigned_expiry=False)
    err = _fails_before_request(EXPIRED, tmp_path, policy, expected_extension="zip")
    assert str(err) == "File extension 'zip' not allowed"


@pytest.mark.parametrize(
    "url, message",
    [
        ("https://files.example.com/exports/photos_bundle.zip", "File extension 'zip' not allowed"),
        ("https://files.example.com/exports/blob-without-extension", "No file extension found"),
        ("https://files.example.com/run.EXE", "File extension 'exe' not allowed"),
    ],
)
def test_download__extension_checked_before_request(tmp_path: Path, url: str, message: str) -> None:
    assert str(_fails_before_request(url, tmp_path)) == message


def test_download__expected_extension_overrides_url(tmp_path: Path) -> None:
    err = _fails_before_request("https://files.example.com/a/report.pdf", tmp_path, expected_extension=".bat")
    assert str(err) == "File extension 'bat' not allowed"


@pytest.mark.parametrize(
    "code, category",
    [
        (errno.ENAMETOOLONG, P),  # the name is refused: the same every time
        (errno.EINVAL, P),
        (errno.ENOSPC, T),  # a full cache drains as uploads finish (core/cache.py)
        (errno.EDQUOT, T),
        (errno.EROFS, P),
        (errno.EACCES, P),
        (errno.EPERM, P),
        (errno.EIO, T),
        (errno.ENOTDIR, T),
        (errno.EMFILE, T),
        (None, T),
    ],
)
def test_write_error__classification(code: int | None, category: ErrorCategory) -> None:
    exc = OSError(code, "boom", "/cache/x.pdf.part?sig=abc") if code else OSError("boom")
    err = download._write_error(exc)
    assert err.category is category
    assert str(err).startswith("File write error: ")
    assert "sig=abc" not in str(err)
    assert "/cache" not in str(err) and ".part" not in str(err)  # no local path reaches a letter or row


@pytest.mark.parametrize(
    "value, expected",
    [("120", 120.0), ("0", 0.0), (" 7 ", 7.0), (None, None), ("", None), ("soon", None), ("-5", None)],
)
def test_retry_after__seconds_form(value: str | None, expected: float | None) -> None:
    assert download._retry_after(value) == expected


def test_retry_after__http_date_form() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    seconds = download._retry_after(later)
    assert seconds is not None and 80 <= seconds <= 90
    past = format_datetime(datetime(2001, 1, 1, tzinfo=UTC), usegmt=True)
    assert download._retry_after(past) == 0.0


def test_download_policy__from_settings() -> None:
    s = load_settings(
        allowed_attachment_domains="files.example.com",
        max_download_bytes=1000,
        download_timeout_seconds=12,
        download_read_timeout_seconds=3,
        max_redirects=2,
    )
    policy = DownloadPolicy.from_settings(s, check_presigned_expiry=False)
    assert policy.url_policy.allowed_hosts == ("files.example.com",)
    assert (policy.max_bytes, policy.timeout_seconds, policy.read_timeout_seconds) == (1000, 12, 3)
    assert (policy.max_redirects, policy.check_presigned_expiry) == (2, False)


def test_download_policy__defaults_from_settings() -> None:
    policy = DownloadPolicy.from_settings(load_settings(), check_presigned_expiry=True)
    assert policy.max_bytes == 2 * 1024**3
    assert policy.max_redirects == 5
    assert policy.chunk_bytes == 1024 * 1024


def test_new_session__pooled_and_ignores_environment() -> None:
    session = new_session(pool_size=7)
    assert session.trust_env is False
    adapter = session.get_adapter("https://files.example.com/")
    assert adapter._pool_maxsize == 7  # type: ignore[attr-defined]  # HTTPAdapter's private pool size
    assert adapter.max_retries.total == 0  # type: ignore[attr-defined]  # HTTPAdapter's urllib3 Retry


def test_transient_and_permanent_errors_are_distinct_types() -> None:
    """Callers may catch by class as well as by category."""
    err = download._http_error(503, requests.structures.CaseInsensitiveDict({"Retry-After": "30"}))
    assert isinstance(err, TransientError) and err.http_status == 503 and err.retry_after_seconds == 30
    err = download._http_error(404, requests.structures.CaseInsensitiveDict())
    assert isinstance(err, PermanentError) and str(err) == "HTTP 404"
    err = download._http_error(206, requests.structures.CaseInsensitiveDict())
    assert err.category is ErrorCategory.UNKNOWN
