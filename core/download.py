"""The shared attachment downloader (SPEC §3.4 as amended by DECISIONS). Pure core: no Celery.

:func:`download_to_file` checks the URL (allow-list, SSRF, port), a presigned link's expiry (when
enabled) and the extension; GETs the file from the address the check resolved (never a second DNS
answer: :mod:`core.security.pinning` keeps the host name for SNI, the certificate and ``Host``)
following at most ``max_redirects`` redirects by hand, re-validating every ``Location``; rejects non-200 answers (:func:`classify_http_status`), bodies over the size limit
(``Content-Length`` first, then by counting) and a Content-Type that contradicts the extension (checked
from the headers, before the body is read); streams the body to ``<dest>.part`` in chunks under one
total deadline (memory does not grow with file size) and renames it onto ``dest``. No HEAD request.

Every failure is a :class:`~core.errors.PipelineError` whose message passed ``sanitize_error``,
raised ``from None`` so a library exception quoting a signed URL is not chained into tracebacks.
After any failure the part file is gone and ``dest`` is untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin

import requests
import urllib3
from requests.adapters import HTTPAdapter

from core.cache import os_error
from core.errors import AuthError, ErrorCategory, PermanentError, PipelineError, TransientError
from core.http_rules import parse_retry_after, status_category
from core.security import filetypes
from core.security.pinning import PinningAdapter, pinned_target
from core.security.presigned import inspect_presigned
from core.security.redact import sanitize_error
from core.security.urls import CheckedUrl, UrlPolicy, UrlRejected, check_url, fetch_url_for

if TYPE_CHECKING:
    from core.settings import Settings

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_MAX_ADDRESSES = 3  # checked addresses tried in turn when a connection is refused
_ERROR_CLASSES: dict[ErrorCategory, type[PipelineError]] = {
    ErrorCategory.TRANSIENT: TransientError,
    ErrorCategory.AUTH: AuthError,
    ErrorCategory.PERMANENT: PermanentError,
}


@dataclass(frozen=True)
class DownloadPolicy:
    url_policy: UrlPolicy
    max_bytes: int
    timeout_seconds: float
    """Base time for one download (every request and the body); see :meth:`time_budget`."""
    read_timeout_seconds: float
    """Longest wait for the connection or for any single socket read."""
    max_redirects: int = 5
    check_presigned_expiry: bool = True
    chunk_bytes: int = 1024 * 1024  # 1 MiB per read and write
    min_bytes_per_second: float = 0.0
    """Slowest healthy link; 0 = the fixed ``timeout_seconds`` whatever the size."""
    max_timeout_seconds: float | None = None
    """Ceiling of :meth:`time_budget` (never below ``timeout_seconds``)."""

    def time_budget(self, size: int | None) -> float:
        """Seconds a download of ``size`` bytes may take: the base plus the time the body needs at
        ``min_bytes_per_second``, capped by the ceiling (issue 9: a 1 GiB file no longer fails on
        any link slower than 18 MB/s, while a stalled link still hits the read timeout)."""
        if not self.min_bytes_per_second or not size:
            return self.timeout_seconds
        budget = self.timeout_seconds + size / self.min_bytes_per_second
        if self.max_timeout_seconds is not None:
            budget = min(budget, max(self.max_timeout_seconds, self.timeout_seconds))
        return budget

    @classmethod
    def from_settings(cls, s: Settings, *, check_presigned_expiry: bool) -> DownloadPolicy:
        return cls(
            url_policy=UrlPolicy.from_settings(s),
            max_bytes=s.max_download_bytes,
            timeout_seconds=s.download_timeout_seconds,
            read_timeout_seconds=s.download_read_timeout_seconds,
            max_redirects=s.max_redirects,
            check_presigned_expiry=check_presigned_expiry,
            min_bytes_per_second=s.download_min_bytes_per_second,
            # 40 s below the hard task limit: inside the soft limit, with time to clean up.
            max_timeout_seconds=min(s.download_max_seconds, s.task_time_limit_seconds - 40),
        )


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    bytes_downloaded: int
    content_type: str | None
    """Normalised MIME type (``image/jpeg``), None when the server sent none."""
    http_status: int
    sha256: str


def new_session(pool_size: int = 10) -> requests.Session:
    """A pooled session that ignores proxy/netrc environment settings and never retries by itself."""
    session = requests.Session()
    session.trust_env = False
    pinned = PinningAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", pinned)
    session.mount("http://", HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0))
    session.headers.update({"User-Agent": "claims-pipeline/0.1", "Accept-Encoding": "identity"})
    return session


def classify_http_status(status: int) -> ErrorCategory:
    """SPEC §6.2: 302/401 auth; 429 transient; other 4xx permanent; 5xx transient; else unknown."""
    return status_category(status, auth=(302,))  # a redirect to a login page means no access


def download_to_file(
    session: requests.Session,
    url: str,
    dest: Path,
    policy: DownloadPolicy,
    *,
    expected_extension: str | None = None,
) -> DownloadResult:
    """Download ``url`` to ``dest`` (see module docstring). ``dest.parent`` is created.

    ``expected_extension`` (e.g. from the blob name) replaces the extension read from the URL.
    Use the session only for attachment downloads: its headers go to every redirect target.
    """
    checked = check_url(url, policy.url_policy)
    if policy.check_presigned_expiry:
        _check_not_expired(url)
    ext = (expected_extension or filetypes.extension_from_url(url) or "").strip(". ").lower()
    filetypes.check_extension(ext)
    started = time.monotonic()
    deadline = started + policy.timeout_seconds  # headers; the body's deadline grows with its size
    response = _open(session, checked, policy, deadline)
    try:
        length = _content_length(response)
        if length is not None and length > policy.max_bytes:
            raise PermanentError(f"File too large: {length} bytes (limit {policy.max_bytes})")
        content_type = response.headers.get("Content-Type")
        filetypes.check_content_type(ext, content_type)
        inflater = _inflater_for(response.headers.get("Content-Encoding", ""))
        count, digest = _stream_to_file(response, dest, policy, started, inflater, length)
    finally:
        response.close()
    mime = filetypes.normalise_content_type(content_type)
    return DownloadResult(dest, count, mime, response.status_code, digest)


def _check_not_expired(url: str) -> None:
    info = inspect_presigned(url)
    if info.is_presigned and info.is_expired() and info.expires_at and info.signed_at:
        raise PermanentError(
            f"Presigned URL expired at {info.expires_at.isoformat()} (signed at {info.signed_at.isoformat()})"
        )


def _open(
    session: requests.Session, checked: CheckedUrl, policy: DownloadPolicy, deadline: float
) -> requests.Response:
    """GET the checked URL and follow redirects by hand; return the streaming 200 response."""
    current, hops = checked, 0
    while True:
        response = _get(session, current, policy, deadline)
        status = response.status_code
        if status == 200:
            return response
        location = response.headers.get("Location", "").strip()
        response.close()
        if status not in _REDIRECT_STATUSES or policy.max_redirects <= 0:
            raise _http_error(status, response.headers)
        if not location:
            raise PermanentError(f"Redirect blocked: HTTP {status} without Location", http_status=status)
        if hops >= policy.max_redirects:
            raise PermanentError(
                f"Redirect blocked: more than {policy.max_redirects} redirects", http_status=status
            )
        target = urljoin(current.url, location)
        try:
            current = check_url(target, policy.url_policy)
        except UrlRejected as exc:
            raise PermanentError(f"Redirect blocked: {exc.reason}", http_status=status) from None
        hops += 1


def _targets(checked: CheckedUrl, policy: DownloadPolicy) -> list[tuple[str, dict[str, str]]]:
    """Where the request goes: the checked addresses (pinned, at most three, in resolver order);
    the DEV simulator for a simulated host; the URL itself when DNS was not consulted."""
    if policy.url_policy.is_simulated(checked.host) or not checked.addresses:
        return [(fetch_url_for(checked.url, policy.url_policy), {})]
    return [pinned_target(checked, address) for address in checked.addresses[:_MAX_ADDRESSES]]


def _get(
    session: requests.Session, checked: CheckedUrl, policy: DownloadPolicy, deadline: float
) -> requests.Response:
    targets = _targets(checked, policy)
    for attempt, (url, headers) in enumerate(targets, start=1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _timeout(policy)
        wait = min(policy.read_timeout_seconds, remaining)
        try:
            return session.get(url, headers=headers, stream=True, allow_redirects=False, timeout=(wait, wait))
        except requests.Timeout:
            raise _timeout(policy) from None
        except requests.ConnectionError as exc:
            # The next checked address may answer; a TLS failure would fail the same way there.
            if attempt < len(targets) and not isinstance(exc, requests.exceptions.SSLError):
                continue
            raise TransientError(sanitize_error(f"Connection error: {exc}")) from None
        except requests.RequestException as exc:
            raise TransientError(sanitize_error(f"Connection error: {exc}")) from None
    raise TransientError("Connection error: no address to connect to")


def _http_error(status: int, headers: requests.structures.CaseInsensitiveDict[str]) -> PipelineError:
    category = classify_http_status(status)
    retry_after = _retry_after(headers.get("Retry-After")) if status in (429, 503) else None
    cls = _ERROR_CLASSES.get(category, PipelineError)
    return cls(f"HTTP {status}", category=category, http_status=status, retry_after_seconds=retry_after)


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now (:func:`core.http_rules.parse_retry_after`)."""
    return parse_retry_after(value)


def _content_length(response: requests.Response) -> int | None:
    try:
        value = int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _timeout(policy: DownloadPolicy, seconds: float | None = None) -> TransientError:
    return TransientError(f"Download timeout after {seconds or policy.timeout_seconds:g}s")


# --- body ------------------------------------------------------------------------------------------


def _stream_to_file(
    response: requests.Response,
    dest: Path,
    policy: DownloadPolicy,
    started: float,
    inflater: zlib._Decompress | None,
    length: int | None,
) -> tuple[int, str]:
    """Write the body to ``dest`` via ``dest.part``; return (decoded bytes, sha256 hex)."""
    part = dest.with_name(dest.name + ".part")
    digest, count = hashlib.sha256(), 0
    chunks = _raw_chunks(response, policy, started, length)
    if inflater is not None:
        chunks = _inflate(chunks, inflater, policy.chunk_bytes)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(part, "wb") as fh:
            for chunk in chunks:
                count += len(chunk)
                if count > policy.max_bytes:
                    raise PermanentError(f"File too large: more than {policy.max_bytes} bytes")
                digest.update(chunk)
                fh.write(chunk)
        os.replace(part, dest)
    except OSError as exc:
        _remove(part)
        raise _write_error(exc) from None
    except BaseException:
        _remove(part)
        raise
    return count, digest.hexdigest()


def _write_error(exc: OSError) -> PipelineError:
    """Classified by what the errno means (:func:`core.cache.os_error`); never names the path."""
    return os_error(exc, "File write error")


def _raw_chunks(
    response: requests.Response, policy: DownloadPolicy, started: float, length: int | None
) -> Iterator[bytes]:
    """Body bytes as received, one socket read at a time, within :meth:`DownloadPolicy.time_budget`
    of the Content-Length (without one, of the bytes received so far: it grows as they arrive)."""
    received = 0
    while True:
        budget = policy.time_budget(length if length is not None else received)
        if time.monotonic() - started >= budget:
            raise _timeout(policy, budget)
        try:
            data = response.raw.read1(policy.chunk_bytes, decode_content=False)
        except (urllib3.exceptions.TimeoutError, TimeoutError):
            raise _timeout(policy) from None
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
            raise TransientError(sanitize_error(f"Connection error: {exc}")) from None
        if not data:
            break
        received += len(data)
        yield data
    if length is not None and received < length:
        raise TransientError(f"Connection error: body ended after {received} of {length} bytes")


def _inflater_for(encoding: str) -> zlib._Decompress | None:
    """None for an identity body; a gzip/zlib decompressor for gzip/deflate; else PERMANENT."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return None
    if name in ("gzip", "x-gzip", "deflate"):
        return zlib.decompressobj(zlib.MAX_WBITS | 32)  # auto-detects a gzip or zlib header
    raise PermanentError(f"Unsupported Content-Encoding: {name}")


def _inflate(chunks: Iterator[bytes], inflater: zlib._Decompress, max_out: int) -> Iterator[bytes]:
    """Decompress with at most ``max_out`` bytes per step, so a small bomb cannot fill memory."""
    try:
        for data in chunks:
            while data:
                out = inflater.decompress(data, max_out)
                if out:
                    yield out
                data = inflater.unconsumed_tail
        tail = inflater.flush()  # at most zlib's window is still buffered here
    except zlib.error as exc:
        raise PermanentError(f"Content-Encoding decode error: {exc}") from None
    if not inflater.eof:
        raise TransientError("Connection error: compressed body ended early")
    yield tail


def _remove(path: Path) -> None:
    # Best effort: the failure being raised matters more than a part file we could not delete.
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
