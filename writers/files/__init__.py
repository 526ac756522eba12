"""File stores: where downloaded attachments land (DECISIONS "Storage").

One small interface, :class:`FileStore`, with a local-directory store (default) and a OneLake /
ADLS Gen2 store; one contract test suite runs against both (STYLE §9).
"""

from __future__ import annotations

from core.errors import ConfigError
from core.settings import Settings
from domains import registry
from writers.files.base import FileStore
from writers.files.local import LocalFileStore
from writers.files.onelake import OneLakeFileStore, parse_abfss
from writers.files.paths import validate_blob_path
from writers.storage import default_credential

__all__ = [
    "FileStore",
    "LocalFileStore",
    "OneLakeFileStore",
    "file_store_from_settings",
    "parse_abfss",
    "validate_blob_path",
]


def file_store_from_settings(settings: Settings) -> FileStore:
    """The store ``FILE_STORE`` selects: ``local`` under ``{lake_dir}/files``, or ``onelake``."""
    if settings.file_store == "local":
        return LocalFileStore(settings.files_root)
    roots = {domain: settings.onelake_path_for(domain) or "" for domain in registry.domains()}
    missing = sorted(f"ONELAKE_{domain.upper()}_PATH" for domain, root in roots.items() if not root)
    if missing:
        raise ConfigError(f"FILE_STORE=onelake needs {', '.join(missing)}")
    return OneLakeFileStore(
        roots,
        credential=default_credential(),
        max_concurrency=settings.onelake_upload_concurrency,
        chunk_bytes=settings.onelake_upload_chunk_bytes,
    )
