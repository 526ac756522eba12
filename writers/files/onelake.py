"""OneLake / ADLS Gen2 file store on ``azure-storage-file-datalake`` (SPEC §8.1-§8.3).

Each domain has an ``abfss://<filesystem>@<account host>/<directory>`` root; a blob path is
stored at ``<directory>/<blob_path>`` in that filesystem, and :meth:`put_file` returns
``root + "/" + blob_path``. Uploads stream from the file handle with ``overwrite=True`` (idempotent).
Every SDK failure is raised as a classified :class:`PipelineError` (auth / transient / permanent).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.filedatalake import DataLakeFileClient, DataLakeServiceClient

from core.errors import ConfigError, PermanentError
from domains.names import Domain
from writers.errors import classify_azure_error
from writers.files.paths import validate_blob_path

CHUNK_BYTES = 4 * 1024 * 1024  # 4 MiB upload blocks (SPEC §8.3)
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
        max_concurrency: int = 4,
    ) -> None:
        if not roots:
            raise ConfigError("OneLakeFileStore needs at least one domain root")
        self._roots = {Domain(domain): parse_abfss(uri) for domain, uri in roots.items()}
        self._max_concurrency = max_concurrency
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

    def put_file(self, domain: Domain, blob_path: str, local_path: Path) -> str:
        """Upload ``local_path`` to the blob path (overwrite); returns ``root + "/" + blob_path``."""
        client, root = self._client(domain, blob_path)
        source = Path(local_path)
        if not source.is_file():
            raise PermanentError(f"put {domain}/{blob_path}: local file is missing")
        try:
            size = source.stat().st_size
            if size == 0:  # the SDK uploads nothing for length 0, so create the empty file explicitly
                client.create_file()
            else:
                with source.open("rb") as stream:
                    client.upload_data(
                        stream,
                        length=size,
                        overwrite=True,
                        chunk_size=CHUNK_BYTES,
                        max_concurrency=self._max_concurrency,
                    )
        except Exception as exc:
            raise classify_azure_error(exc, f"put {domain}/{blob_path}") from exc
        return f"{root.uri}/{blob_path}"

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
