"""Delta storage options derived from settings (writers.storage)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from core.errors import AuthError, ConfigError
from core.settings import load_settings
from writers.storage import STORAGE_SCOPE, connection_string_options, storage_options, uri_scheme

AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class StaticCredential:
    """A token credential with a fixed answer (what azure-identity returns, minus the network)."""

    def __init__(self, token: str | None) -> None:
        self.token, self.scopes = token, []

    def get_token(self, *scopes: str, **_: Any) -> Any:
        self.scopes.extend(scopes)
        if self.token is None:
            raise RuntimeError("no credential available")
        return SimpleNamespace(token=self.token, expires_on=0)


@pytest.mark.parametrize(
    ("uri", "scheme"),
    [
        ("/srv/lake/tables", None),
        ("lake/tables", None),
        ("file:///srv/lake", None),
        ("C:\\lake", None),
        ("az://c/tables", "az"),
        ("ABFSS://ws@onelake.dfs.fabric.microsoft.com/lh/Tables/dbo", "abfss"),
    ],
)
def test_uri_scheme(uri: str, scheme: str | None) -> None:
    assert uri_scheme(uri) == scheme


def test_storage_options__local_root_needs_none(tmp_path) -> None:
    assert storage_options(load_settings(lake_dir=tmp_path)) is None


def test_storage_options__azurite_connection_string() -> None:
    settings = load_settings(
        tables_uri="az://lake/tables",
        azure_storage_connection_string=(
            f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
            "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;"
        ),
    )
    assert storage_options(settings) == {
        "azure_storage_account_name": "devstoreaccount1",
        "azure_storage_account_key": AZURITE_KEY,
        "azure_storage_endpoint": "http://127.0.0.1:10000/devstoreaccount1",
        "allow_http": "true",
    }


def test_connection_string__development_storage_shorthand() -> None:
    assert connection_string_options("UseDevelopmentStorage=true") == {
        "azure_storage_use_emulator": "true",
        "azure_storage_account_name": "devstoreaccount1",
    }


def test_connection_string__account_with_sas_and_suffix_uses_https() -> None:
    options = connection_string_options(
        "DefaultEndpointsProtocol=https;AccountName=acct;SharedAccessSignature=sv=2024&sig=abc;"
        "EndpointSuffix=core.windows.net"
    )
    assert options == {
        "azure_storage_account_name": "acct",
        "azure_storage_sas_key": "sv=2024&sig=abc",
        "azure_storage_endpoint": "https://acct.blob.core.windows.net",
    }


@pytest.mark.parametrize("text", ["AccountKey=SECRETKEY", "AccountName=a", "garbage-SECRETKEY"])
def test_connection_string__malformed_is_config_error_without_the_secret(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        connection_string_options(text)
    assert "SECRETKEY" not in str(caught.value)


def test_storage_options__unsupported_scheme_is_config_error() -> None:
    with pytest.raises(ConfigError, match="s3"):
        storage_options(load_settings(tables_uri="s3://bucket/tables"))


def test_storage_options__onelake_uses_an_azure_ad_token_for_storage() -> None:
    credential = StaticCredential("tok-123")
    settings = load_settings(tables_uri="abfss://ws@onelake.dfs.fabric.microsoft.com/lh/Tables/dbo")
    assert storage_options(settings, credential) == {"bearer_token": "tok-123"}
    assert credential.scopes == [STORAGE_SCOPE]


def test_storage_options__no_token_is_auth_error() -> None:
    settings = load_settings(tables_uri="abfss://ws@onelake.dfs.fabric.microsoft.com/lh/Tables/dbo")
    with pytest.raises(AuthError):
        storage_options(settings, StaticCredential(None))
