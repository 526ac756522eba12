"""Presigned-URL inspection (SPEC §9.4): when was a link signed and when does it stop working.

* ClaimX file-service URLs carry ``systemDate`` (signing time, epoch ms) and ``expires`` (TTL, ms).
  A URL is ClaimX when it has a ``systemDate`` parameter, or (without S3 markers) its host is
  ``claimxperience.com`` / a sub-domain or its path contains ``/cxfileservice/``. SPEC keys on
  "contains claimxperience.com"; the parameter test also covers file-service links served from other
  hosts (the samples' ``files.example.com``).
* S3 presigned URLs carry ``X-Amz-Date`` (``YYYYMMDDTHHMMSSZ``) and ``X-Amz-Expires`` (seconds).
* Anything else is ``unknown``: not presigned, never expired.

A presigned URL whose fields are missing or unreadable has ``parse_error`` set and no expiry, and is
treated as not expired. Parameter names are matched case-insensitively. Nothing here raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import SplitResult, parse_qsl, urlsplit

UrlType = Literal["s3", "claimx", "unknown"]


@dataclass(frozen=True)
class PresignedInfo:
    url_type: UrlType
    is_presigned: bool
    signed_at: datetime | None = None
    expires_at: datetime | None = None
    ttl_seconds: int | None = None
    parse_error: str | None = None

    def seconds_remaining(self, now: datetime | None = None) -> float | None:
        """Seconds until expiry (negative once expired); None when the expiry is unknown."""
        if self.expires_at is None:
            return None
        return (self.expires_at - _utc(now)).total_seconds()

    def is_expired(self, now: datetime | None = None) -> bool:
        """True when ``now >= expires_at``; never true when the expiry is unknown."""
        remaining = self.seconds_remaining(now)
        return remaining is not None and remaining <= 0

    def expires_within(self, seconds: float, now: datetime | None = None) -> bool:
        """True when the link expires within ``seconds`` from ``now`` (or already has)."""
        remaining = self.seconds_remaining(now)
        return remaining is not None and remaining <= seconds


_UNKNOWN = PresignedInfo(url_type="unknown", is_presigned=False)


def inspect_presigned(url: str) -> PresignedInfo:
    """Classify ``url`` and read its signing time and lifetime (see module docstring)."""
    try:
        parts = urlsplit(url or "")
    except ValueError:
        return _UNKNOWN
    params = _params(parts)
    if "systemdate" in params:
        return _claimx(params)
    if "x-amz-date" in params or "x-amz-expires" in params:
        return _s3(params)
    if _is_claimx_service(parts):
        return _claimx(params)
    return _UNKNOWN


def expires_at_iso(url: str) -> str | None:
    """ISO-8601 UTC expiry of a presigned ``url`` (``2099-12-31T01:00:00+00:00``), else None."""
    expires_at = inspect_presigned(url).expires_at
    return expires_at.isoformat() if expires_at is not None else None


def _params(parts: SplitResult) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        params.setdefault(key.strip().lower(), value.strip())
    return params


def _is_claimx_service(parts: SplitResult) -> bool:
    host = (parts.hostname or "").rstrip(".")
    return (
        host == "claimxperience.com"
        or host.endswith(".claimxperience.com")
        or "/cxfileservice/" in parts.path.lower()
    )


def _claimx(params: dict[str, str]) -> PresignedInfo:
    if not params.get("systemdate"):
        return PresignedInfo("claimx", True, parse_error="Missing systemDate")
    if not params.get("expires"):
        return PresignedInfo("claimx", True, parse_error="Missing expires")
    try:
        signed_ms = int(params["systemdate"])
        ttl_ms = int(params["expires"])
        if signed_ms < 0 or ttl_ms < 0:
            raise ValueError("negative systemDate or expires")
        signed_at = datetime.fromtimestamp(signed_ms / 1000, UTC)
        expires_at = signed_at + timedelta(milliseconds=ttl_ms)
    except (ValueError, OverflowError, OSError) as exc:
        return PresignedInfo("claimx", True, parse_error=f"Parse error: {exc}")
    return PresignedInfo("claimx", True, signed_at, expires_at, ttl_ms // 1000)


def _s3(params: dict[str, str]) -> PresignedInfo:
    if not params.get("x-amz-date"):
        return PresignedInfo("s3", True, parse_error="Missing X-Amz-Date")
    if not params.get("x-amz-expires"):
        return PresignedInfo("s3", True, parse_error="Missing X-Amz-Expires")
    try:
        signed_at = datetime.strptime(params["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        ttl = int(params["x-amz-expires"])
        if ttl < 0:
            raise ValueError("negative X-Amz-Expires")
        expires_at = signed_at + timedelta(seconds=ttl)
    except (ValueError, OverflowError) as exc:
        return PresignedInfo("s3", True, parse_error=f"Parse error: {exc}")
    return PresignedInfo("s3", True, signed_at, expires_at, ttl)


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)
