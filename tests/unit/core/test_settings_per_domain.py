"""Settings that exist per domain are keyed by domain, for any domain (plug-ins included)."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.settings import load_settings


def test_defaults_follow_the_domain_name() -> None:
    s = load_settings()
    assert (s.topic_for("xact"), s.dlq_topic_for("claimx")) == ("xact.events.raw", "claimx.events.dlq")
    assert s.topic_for("plugin") == "plugin.events.raw"  # not claimx's: no domain is the fallback
    assert s.onelake_path_for("xact") is None


def test_the_per_domain_names_still_work_and_explicit_keys_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XACT_EVENTS_TOPIC", "env.xact")
    monkeypatch.setenv("PLUGIN_DLQ_TOPIC", "env.plugin.dlq")
    s = load_settings(claimx_events_topic="kw.claimx", onelake_xact_path="abfss://fs@host/x")
    assert s.topic_for("xact") == "env.xact"
    assert s.topic_for("claimx") == "kw.claimx"
    assert s.dlq_topic_for("plugin") == "env.plugin.dlq"
    assert s.onelake_path_for("xact") == "abfss://fs@host/x"
    keyed = load_settings(events_topics={"xact": "keyed.xact"})
    assert keyed.topic_for("xact") == "keyed.xact"


def test_plugin_modules_keep_their_case() -> None:
    assert load_settings(domain_plugins="Pkg.Mod, other.mod").domain_plugins == ["Pkg.Mod", "other.mod"]


def test_onelake_needs_roots() -> None:
    with pytest.raises(ConfigError, match="ONELAKE_XACT_PATH"):
        load_settings(file_store="onelake")
