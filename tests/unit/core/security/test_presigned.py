"""Presigned URL inspection (SPEC §9.4), including the sample events' S3 links."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.security.presigned import expires_at_iso, inspect_presigned

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

#: Attachment URLs of samples/xact_events.jsonl lines 2 (signed 2099) and 11 (signed 2024, expired).
SAMPLE_LINE_2 = (
    "https://xn-exportreceiver.s3.example.com/exports/A-7100452/3f9b2c1e/Proof_Of_Loss.pdf?X-Amz-Alg"
    "orithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLEKEY%2F20991231%2Fus-west-2%2Fs3%2Faws4_requ"
    "est&X-Amz-Date=20991231T000000Z&X-Amz-Expires=604800&X-Amz-SignedHeaders=host&X-Amz-Signature=0"
    "b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c"
)
SAMPLE_LINE_11 = (
    "https://xn-exportreceiver.s3.example.com/exports/A-7100459/contents_list.pdf?X-Amz-Algorithm=AW"
    "S4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLEKEY%2F20240101%2Fus-west-2%2Fs3%2Faws4_request&X-Amz"
    "-Date=20240101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=0b1c2d3e4f5a"
    "6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c"
)


def _s3(date: str, expires: str | None = "3600", extra: str = "") -> str:
    query = f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={date}"
    if expires is not None:
        query += f"&X-Amz-Expires={expires}"
    return f"https://bucket.s3.example.com/a/b.pdf?{query}&X-Amz-Signature=abc{extra}"


def _claimx(system_ms: int | str | None, expires_ms: int | str | None) -> str:
    query = "sign=5f4e3d2c1b0a"
    if system_ms is not None:
        query += f"&systemDate={system_ms}"
    if expires_ms is not None:
        query += f"&expires={expires_ms}"
    return f"https://www.claimxperience.com/service/cxfileservice/get/uuid?{query}&filename=x.pdf"


def test_inspect__sample_line_2_far_future_link_is_not_expired() -> None:
    info = inspect_presigned(SAMPLE_LINE_2)
    assert (info.url_type, info.is_presigned, info.parse_error) == ("s3", True, None)
    assert info.signed_at == datetime(2099, 12, 31, tzinfo=UTC)
    assert info.ttl_seconds == 604800
    assert info.expires_at == datetime(2100, 1, 7, tzinfo=UTC)
    assert not info.is_expired(NOW)
    assert not info.is_expired()


def test_inspect__sample_line_11_link_signed_in_2024_is_expired() -> None:
    info = inspect_presigned(SAMPLE_LINE_11)
    assert info.url_type == "s3"
    assert info.signed_at == datetime(2024, 1, 1, tzinfo=UTC)
    assert info.ttl_seconds == 3600
    assert info.expires_at == datetime(2024, 1, 1, 1, 0, tzinfo=UTC)
    assert info.is_expired(NOW)
    assert info.is_expired()
    remaining = info.seconds_remaining(NOW)
    assert remaining is not None and remaining < 0


def test_inspect__s3_ttl_3600() -> None:
    info = inspect_presigned(_s3("20260105T110000Z", "3600"))
    assert info.ttl_seconds == 3600
    assert info.expires_at == NOW
    assert info.is_expired(NOW)  # now >= expires_at
    assert not info.is_expired(NOW - timedelta(seconds=1))
    assert info.seconds_remaining(NOW - timedelta(seconds=5)) == 5


def test_inspect__expires_within_for_30_second_ttl() -> None:
    signed = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    info = inspect_presigned(_s3(signed, "30"))
    assert info.expires_within(60)
    assert not info.expires_within(10)


def test_inspect__s3_parameter_names_are_case_insensitive() -> None:
    url = "https://b.s3.example.com/a.pdf?x-amz-date=20260105T110000Z&x-amz-expires=60"
    info = inspect_presigned(url)
    assert info.url_type == "s3"
    assert info.expires_at == datetime(2026, 1, 5, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "url, error",
    [
        ("https://b.s3.example.com/a.pdf?X-Amz-Expires=60", "Missing X-Amz-Date"),
        ("https://b.s3.example.com/a.pdf?X-Amz-Date=20260105T110000Z", "Missing X-Amz-Expires"),
    ],
)
def test_inspect__s3_missing_field_is_a_parse_error_and_not_expired(url: str, error: str) -> None:
    info = inspect_presigned(url)
    assert (info.url_type, info.is_presigned, info.parse_error) == ("s3", True, error)
    assert info.expires_at is None
    assert not info.is_expired(NOW)
    assert not info.expires_within(10**9, NOW)
    assert info.seconds_remaining(NOW) is None


@pytest.mark.parametrize(
    "url", [_s3("2026-01-05", "60"), _s3("20260105T110000Z", "sixty"), _s3("20260105T110000Z", "-5")]
)
def test_inspect__s3_bad_values_are_parse_errors(url: str) -> None:
    info = inspect_presigned(url)
    assert info.parse_error is not None and info.parse_error.startswith("Parse error: ")
    assert not info.is_expired(NOW)


def test_inspect__claimx_service_url_uses_epoch_ms_and_ttl_ms() -> None:
    signed_ms = int(datetime(2026, 1, 5, 11, 0, tzinfo=UTC).timestamp() * 1000)
    info = inspect_presigned(_claimx(signed_ms, 3_600_000))
    assert (info.url_type, info.is_presigned, info.parse_error) == ("claimx", True, None)
    assert info.signed_at == datetime(2026, 1, 5, 11, 0, tzinfo=UTC)
    assert info.ttl_seconds == 3600
    assert info.expires_at == NOW
    assert info.is_expired(NOW)


def test_inspect__claimx_file_service_link_on_other_host_is_claimx() -> None:
    url = (
        "https://files.example.com/service/cxfileservice/get/8d7f6e5d-4c3b-4a29-8f17-0e6d5c4b3a21"
        "?sign=5f4e3d2c1b0a&systemDate=4102444800000&expires=86400000&filename=Roof_Inspection.pdf&download=true"
    )
    info = inspect_presigned(url)
    assert info.url_type == "claimx"
    assert info.signed_at == datetime(2100, 1, 1, tzinfo=UTC)
    assert info.expires_at == datetime(2100, 1, 2, tzinfo=UTC)
    assert expires_at_iso(url) == "2100-01-02T00:00:00+00:00"


@pytest.mark.parametrize(
    "system_ms, expires_ms, error",
    [
        (None, 1000, "Missing systemDate"),
        (1767610800000, None, "Missing expires"),
    ],
)
def test_inspect__claimx_missing_field_is_parse_error_not_expired(system_ms, expires_ms, error) -> None:
    info = inspect_presigned(_claimx(system_ms, expires_ms))
    assert (info.url_type, info.parse_error) == ("claimx", error)
    assert not info.is_expired(NOW)


@pytest.mark.parametrize("system_ms, expires_ms", [("abc", 1000), (1767610800000, "1e3"), (10**30, 1000)])
def test_inspect__claimx_bad_numbers_are_parse_errors(system_ms, expires_ms) -> None:
    info = inspect_presigned(_claimx(system_ms, expires_ms))
    assert info.url_type == "claimx"
    assert info.parse_error is not None and info.parse_error.startswith("Parse error: ")
    assert not info.is_expired(NOW)


@pytest.mark.parametrize(
    "url",
    [
        "https://files.example.com/a/b.pdf",
        "https://files.example.com/a/b.pdf?expires=100",  # `expires` alone is not a presigned marker
        "",
        "https://[::1/broken",
        "not a url",
    ],
)
def test_inspect__other_urls_are_unknown_and_never_expired(url: str) -> None:
    info = inspect_presigned(url)
    assert (info.url_type, info.is_presigned, info.expires_at) == ("unknown", False, None)
    assert not info.is_expired(NOW)
    assert not info.expires_within(10**9)
    assert expires_at_iso(url) is None


def test_inspect__naive_now_is_taken_as_utc() -> None:
    info = inspect_presigned(_s3("20260105T110000Z", "3600"))
    assert info.is_expired(NOW.replace(tzinfo=None))
    assert not info.is_expired(datetime(2026, 1, 5, 11, 59, 59))


def test_expires_at_iso__sample_expired_link() -> None:
    assert expires_at_iso(SAMPLE_LINE_11) == "2024-01-01T01:00:00+00:00"
