"""File stores: where downloaded attachments land (DECISIONS "Storage").

One small interface, :class:`FileStore`, with a local-directory store (default) and a OneLake /
ADLS Gen2 store; one contract test suite runs against both (STYLE §9).
"""

from __future__ import annotations

from core.settings import Settings
from domains.names import Domain
from writers.files.base import FileStore
from writers.files.local import LocalFileStore
from writers.files.onelake import OneLakeFileStore, parse_abfss
from writers.files.paths import validate_blob_path

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
    from writers.storage import default_credential

    roots = {Domain.XACT: settings.onelake_xact_path or "", Domain.CLAIMX: settings.onelake_claimx_path or ""}
    return OneLakeFileStore(roots, credential=default_credential())
