"""Storage options for delta-rs (object_store) from the one settings object (SPEC §8.2).

* A local tables root needs none (``None``).
* ``AZURE_STORAGE_CONNECTION_STRING`` (Azurite or a storage account by key / SAS) is translated
  into object_store keys: account name and key, the blob endpoint, plain http when the endpoint
  is http.
* Otherwise an Azure AD token for the storage resource comes from ``azure-identity``
  (service principal from the environment, managed identity, Azure CLI), as for OneLake.

Secrets are never part of an exception message.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol
from urllib.parse import urlsplit

from core.errors import AuthError, ConfigError
from core.settings import Settings

AZURE_SCHEMES = frozenset({"az", "azure", "abfs", "abfss", "adl"})
STORAGE_SCOPE = "https://storage.azure.com/.default"
EMULATOR_ACCOUNT = "devstoreaccount1"


class TokenCredential(Protocol):
    def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


def uri_scheme(uri: str) -> str | None:
    """The URI's scheme in lower case, or ``None`` for a local path (``C:\\…`` included)."""
    scheme = urlsplit(uri).scheme.lower()
    return None if len(scheme) <= 1 or scheme == "file" else scheme


def storage_options(settings: Settings, credential: TokenCredential | None = None) -> dict[str, str] | None:
    """object_store options for the tables root of ``settings``; ``None`` for a local root.

    Raises :class:`ConfigError` for a scheme other than Azure's or a malformed connection string,
    :class:`AuthError` when no Azure AD token can be obtained.
    """
    scheme = uri_scheme(settings.tables_root)
    if scheme is None:
        return None
    if scheme not in AZURE_SCHEMES:
        raise ConfigError(f"TABLES_URI scheme {scheme!r} is not supported (local path or az/abfss)")
    if settings.azure_storage_connection_string is not None:
        return connection_string_options(settings.azure_storage_connection_string.get_secret_value())
    return {"bearer_token": azure_token(credential or default_credential())}


def connection_string_options(connection_string: str) -> dict[str, str]:
    """Translate an Azure Storage connection string into object_store ``azure_*`` options."""
    parts = _parse_connection_string(connection_string)
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        return {"azure_storage_use_emulator": "true", "azure_storage_account_name": EMULATOR_ACCOUNT}
    account = parts.get("accountname")
    if not account:
        raise ConfigError("AZURE_STORAGE_CONNECTION_STRING has no AccountName")
    options = {"azure_storage_account_name": account}
    if parts.get("accountkey"):
        options["azure_storage_account_key"] = parts["accountkey"]
    elif parts.get("sharedaccesssignature"):
        options["azure_storage_sas_key"] = parts["sharedaccesssignature"]
    else:
        raise ConfigError("AZURE_STORAGE_CONNECTION_STRING has neither AccountKey nor SharedAccessSignature")
    endpoint = parts.get("blobendpoint")
    if not endpoint and parts.get("endpointsuffix"):
        protocol = parts.get("defaultendpointsprotocol", "https")
        endpoint = f"{protocol}://{account}.blob.{parts['endpointsuffix']}"
    if endpoint:
        options["azure_storage_endpoint"] = endpoint.rstrip("/")
        if urlsplit(endpoint).scheme.lower() == "http":
            options["allow_http"] = "true"
    return options


def _parse_connection_string(connection_string: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for item in connection_string.split(";"):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError("AZURE_STORAGE_CONNECTION_STRING is malformed (expected key=value;…)")
        parts[key.strip().lower()] = value.strip()
    return parts


@functools.cache
def default_credential() -> TokenCredential:
    """The process's Azure AD credential chain (env service principal, managed identity, CLI).

    Built once per process so that its token cache is reused across flushes and uploads.
    """
    # Imported here: azure-identity takes ~0.3 s to load and only OneLake/Kusto use it.
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


def azure_token(credential: TokenCredential) -> str:
    """A bearer token for the storage resource; :class:`AuthError` when none can be had."""
    try:
        return str(credential.get_token(STORAGE_SCOPE).token)
    except Exception as exc:  # noqa: BLE001 - azure-identity raises several unrelated types; all mean "no token"
        raise AuthError(f"no Azure AD token for storage ({type(exc).__name__})") from None
