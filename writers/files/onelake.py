"""OneLake / ADLS Gen2 file store on ``azure-storage-file-datalake`` (SPEC §8.1-§8.3).

Each domain has an ``abfss://<filesystem>@<account host>/<directory>`` root; a blob path is
stored at ``<directory>/<blob_path>`` in that filesystem, and :meth:`put_file` returns
``root + "/" + blob_path``. Every SDK failure is raised as a classified :class:`PipelineError`
(auth / transient / permanent).

Upload (issue 9): create (or truncate) the file, then **append chunks in parallel** at their
positions (``ONELAKE_UPLOAD_CHUNK_BYTES``, ``ONELAKE_UPLOAD_CONCURRENCY``), then one flush with
``If-Match`` on the create's ETag that commits exactly ``size`` bytes. The chunks are read once,
in order, and the sha256 to check is taken from those very bytes, so the check costs no second
read of the file; a mismatch is found before the flush, so nothing is committed. The SDK's own
``upload_data(chunk_size, max_concurrency)`` does the same appends, but flushes whatever it read
(no hook between the last append and the flush) and holds ``max_concurrency`` + 1 chunks.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.filedatalake import DataLakeFileClient, DataLakeServiceClient

from core.errors import ConfigError, PermanentError
from domains.names import Domain
from writers.errors import classify_azure_error
from writers.files.base import BlobExists
from writers.files.paths import validate_blob_path

CHUNK_BYTES = 8 * 1024 * 1024  # default append size (ONELAKE_UPLOAD_CHUNK_BYTES)
CONCURRENCY = 8  # default appends in flight (ONELAKE_UPLOAD_CONCURRENCY)
TIMEOUT_SECONDS = 300.0  # connection and read timeouts (SPEC §8.3)


@dataclass(frozen=True)
class AbfssRoot:
    """A parsed ``abfss://filesystem@host/directory`` URI."""

    uri: str
    file_system: str
    account_host: str
    directory: str

    @property
    def account_url(self) -> str:
        return f"https://{self.account_host}"


def os_size(stream: BinaryIO) -> int:
    """Size of an open file, from its descriptor (the same file the upload reads)."""
    return os.fstat(stream.fileno()).st_size


def parse_abfss(uri: str) -> AbfssRoot:
    """Parse an abfss root (SPEC §8.1): scheme ``abfss``, netloc ``filesystem@host``, rest = directory."""
    parts = urlsplit(uri.strip())
    if parts.scheme.lower() != "abfss":
        raise ConfigError(f"OneLake root must be an abfss:// URI, got scheme {parts.scheme!r}")
    file_system, sep, host = parts.netloc.partition("@")
    if not sep or not file_system or not host:
        raise ConfigError("OneLake root must look like abfss://<filesystem>@<host>/<directory>")
    return AbfssRoot(
        uri=uri.strip().rstrip("/"),
        file_system=file_system,
        account_host=host,
        directory=parts.path.strip("/"),
    )


class OneLakeFileStore:
    """ADLS Gen2 (OneLake) file store with one root per domain.

    ``account_url`` overrides the ``https://<host>`` derived from the roots (an emulator or a
    test server such as ``http://127.0.0.1:<port>/<account>``). ``retry_total`` bounds the SDK's
    own retries of 5xx/timeouts (first after ``retry_backoff_seconds``, growing exponentially)
    before a :class:`PipelineError` reaches the task, whose Celery retry policy takes over.
    """

    def __init__(
        self,
        roots: dict[Domain, str],
        credential: Any,
        *,
        account_url: str | None = None,
        retry_total: int = 3,
        retry_backoff_seconds: float = 2.0,
        timeout_seconds: float = TIMEOUT_SECONDS,
        max_concurrency: int = CONCURRENCY,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        if not roots:
            raise ConfigError("OneLakeFileStore needs at least one domain root")
        if max_concurrency < 1 or chunk_bytes < 1:
            raise ConfigError("OneLake upload concurrency and chunk size must be positive")
        self._roots = {Domain(domain): parse_abfss(uri) for domain, uri in roots.items()}
        self._max_concurrency = max_concurrency
        self._chunk_bytes = chunk_bytes
        self._services: dict[str, DataLakeServiceClient] = {}
        for root in self._roots.values():
            url = account_url or root.account_url
            if url not in self._services:
                self._services[url] = DataLakeServiceClient(
                    url,
                    credential=credential,
                    retry_total=retry_total,
                    initial_backoff=retry_backoff_seconds,
                    increment_base=2,
                    connection_timeout=timeout_seconds,
                    read_timeout=timeout_seconds,
                )
        self._account_url = account_url

    def put_file(
        self,
        domain: Domain,
        blob_path: str,
        local_path: Path,
        *,
        overwrite: bool = True,
        sha256: str | None = None,
    ) -> str:
        """Upload ``local_path`` to the blob path; returns ``root + "/" + blob_path`` (FileStore contract).

        ``overwrite=False`` creates the file with ``If-None-Match: *`` (atomic: a second writer
        gets :class:`BlobExists`); ``overwrite=True`` creates or truncates it. ``sha256`` is
        checked on the bytes uploaded, before the flush commits them (module doc): on a mismatch
        nothing is committed and the file this call created or truncated is deleted.
        Memory: at most ``max_concurrency`` + 1 chunks.
        """
        client, root = self._client(domain, blob_path)
        source = Path(local_path)
        if not source.is_file():
            raise PermanentError(f"put {domain}/{blob_path}: local file is missing")
        created = False
        try:
            with source.open("rb") as stream:
                size = os_size(stream)
                try:
                    condition = {} if overwrite else {"match_condition": MatchConditions.IfMissing}
                    etag = client.create_file(**condition)["etag"]
                    created = True
                except ResourceExistsError:
                    if overwrite:  # a 409 of another kind (a lease, a conflicting operation)
                        raise
                    raise BlobExists(
                        f"put {domain}/{blob_path}: a blob is already stored at this path"
                    ) from None
                digest = self._append_all(client, stream, size)
            if sha256 is not None and digest != sha256.lower():
                raise PermanentError(
                    f"put {domain}/{blob_path}: cached file changed after download (sha256 mismatch)"
                )
            if size:  # a created file is already an empty file: nothing to commit
                client.flush_data(size, etag=etag, match_condition=MatchConditions.IfNotModified, close=True)
        except BlobExists:
            raise
        except Exception as exc:
            if created:  # no partial or unverified blob that a retry would take for someone else's
                with contextlib.suppress(Exception):
                    client.delete_file()
            if isinstance(exc, PermanentError):
                raise
            raise classify_azure_error(exc, f"put {domain}/{blob_path}") from exc
        return f"{root.uri}/{blob_path}"

    def _append_all(self, client: DataLakeFileClient, stream: BinaryIO, size: int) -> str:
        """Append ``size`` bytes of ``stream`` in parallel chunks; return their sha256 (hex)."""
        digest = hashlib.sha256()
        if size == 0:
            return digest.hexdigest()
        running: set[Future[Any]] = set()
        with ThreadPoolExecutor(self._max_concurrency, thread_name_prefix="onelake-append") as pool:
            try:
                for position in range(0, size, self._chunk_bytes):
                    if len(running) >= self._max_concurrency:
                        done, running = wait(running, return_when=FIRST_COMPLETED)
                        for future in done:
                            future.result()  # the first failure stops the upload
                    chunk = stream.read(min(self._chunk_bytes, size - position))
                    if not chunk:
                        raise PermanentError("cached file shrank during the upload")
                    digest.update(chunk)
                    running.add(pool.submit(client.append_data, chunk, offset=position, length=len(chunk)))
                if stream.read(1):
                    raise PermanentError("cached file grew during the upload")
                for future in wait(running).done:
                    future.result()
            finally:
                for future in running:
                    future.cancel()
        return digest.hexdigest()

    def sha256(self, domain: Domain, blob_path: str) -> str | None:
        """Hex sha256 of the stored blob, streamed in chunks; ``None`` when there is none."""
        client, _ = self._client(domain, blob_path)
        digest = hashlib.sha256()
        try:
            for chunk in client.download_file().chunks():
                digest.update(chunk)
        except ResourceNotFoundError:
            return None
        except Exception as exc:
            raise classify_azure_error(exc, f"read {domain}/{blob_path}") from exc
        return digest.hexdigest()

    def exists(self, domain: Domain, blob_path: str) -> bool:
        client, _ = self._client(domain, blob_path)
        try:
            return bool(client.exists())
        except Exception as exc:
            raise classify_azure_error(exc, f"exists {domain}/{blob_path}") from exc

    def read_bytes(self, domain: Domain, blob_path: str) -> bytes:
        client, _ = self._client(domain, blob_path)
        try:
            return bytes(client.download_file().readall())
        except Exception as exc:
            raise classify_azure_error(exc, f"read {domain}/{blob_path}") from exc

    def delete(self, domain: Domain, blob_path: str) -> bool:
        """Delete the file; ``False`` when it did not exist."""
        client, _ = self._client(domain, blob_path)
        try:
            client.delete_file()
        except ResourceNotFoundError:
            return False
        except Exception as exc:
            raise classify_azure_error(exc, f"delete {domain}/{blob_path}") from exc
        return True

    def uri(self, domain: Domain, blob_path: str) -> str:
        _, root = self._client(domain, blob_path)
        return f"{root.uri}/{blob_path}"

    def close(self) -> None:
        for service in self._services.values():
            service.close()

    def _client(self, domain: Domain, blob_path: str) -> tuple[DataLakeFileClient, AbfssRoot]:
        root = self._roots.get(Domain(domain))
        if root is None:
            raise PermanentError(f"no OneLake root configured for domain {domain}")
        validate_blob_path(blob_path)
        service = self._services[self._account_url or root.account_url]
        path = f"{root.directory}/{blob_path}" if root.directory else blob_path
        return service.get_file_client(root.file_system, path), root
