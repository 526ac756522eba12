"""The settings object: environment parsing, validation at start-up, secrets that never print."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.settings import DEFAULT_ALLOWED_HOSTS, load_settings

SECRET = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=TOPSECRET="


def test_event_hubs_connection_string__alone_switches_kafka_to_sasl_ssl_plain() -> None:
    conf = load_settings(eventhub_connection_string=SECRET).kafka_config()
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanism"] == "PLAIN"
    assert conf["sasl.username"] == "$ConnectionString" and conf["sasl.password"] == SECRET


def test_secrets__never_appear_in_repr_or_dump() -> None:
    settings = load_settings(
        eventhub_connection_string=SECRET, claimx_api_token="dG9wOnNlY3JldA==", kafka_sasl_password="pw-123"
    )
    shown = repr(settings) + str(settings.model_dump())
    assert "TOPSECRET" not in shown and "dG9wOnNlY3JldA==" not in shown and "pw-123" not in shown


def test_environment__comma_lists_are_trimmed_lowercased_and_empties_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALLOWED_ATTACHMENT_DOMAINS", " Files.Example.com, ,*.s3.example.com,")
    monkeypatch.setenv("RETRY_DELAYS_SECONDS", "5, 10,20")
    settings = load_settings()
    assert settings.allowed_attachment_domains == ["files.example.com", "*.s3.example.com"]
    assert settings.retry_delays_seconds == [5, 10, 20]


def test_defaults__production_allow_list_and_no_dev_simulator() -> None:
    settings = load_settings()
    assert tuple(settings.allowed_attachment_domains) == DEFAULT_ALLOWED_HOSTS
    assert "localhost" not in settings.allowed_attachment_domains
    assert settings.dev_simulator_url is None and settings.dev_simulator_hosts == []


def test_onelake_without_roots__refused_with_a_clear_message() -> None:
    with pytest.raises(ConfigError, match="ONELAKE_XACT_PATH"):
        load_settings(file_store="onelake")


def test_bad_value__refused_at_start_up() -> None:
    with pytest.raises(ConfigError, match="kafka_security_protocol"):
        load_settings(kafka_security_protocol="CARRIER_PIGEON")
