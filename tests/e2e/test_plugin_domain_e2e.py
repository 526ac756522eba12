"""A third domain, defined only in ``tests/plugin_domain``, runs end to end through the real parts.

The pipeline learns about it from the environment alone (``DOMAIN_PLUGINS``, and its topic names
by ``PLUGIN_EVENTS_TOPIC`` / ``PLUGIN_DLQ_TOPIC``): the dispatcher parses and plans its events,
workers serve its queues (``plugin.enrich``, ``plugin.download``, ``plugin.upload``,
``plugin.write``), Beat's flush commits its table. Its row must land in its Delta table and its
file in the lake, byte for byte; its malformed record must reach its own dead-letter topic.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from domains import registry
from domains.names import Table
from ops.status import topic_size
from simulator.files import expected_bytes
from tests.harness import Harness

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

PLUGINS = "tests.plugin_domain"


@pytest.fixture
def plugged() -> Iterator[None]:
    registry.load([PLUGINS])  # this process reads the table and publishes like the others
    try:
        yield
    finally:
        registry.unload([PLUGINS])  # later tests in this session see the built-in domains only


@pytest.mark.usefixtures("plugged")
def test_a_plugged_in_domain_runs_through_dispatcher_workers_and_flush(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    topic, dlq = f"t{tag}.plugin.events.raw", f"t{tag}.plugin.events.dlq"
    h = Harness(
        tmp_path,
        extra_env={"DOMAIN_PLUGINS": PLUGINS, "PLUGIN_EVENTS_TOPIC": topic, "PLUGIN_DLQ_TOPIC": dlq},
    )
    h.topics["plugin"], h.dlq_topics["plugin"] = topic, dlq  # created, and watched for lag
    urls = {f"P-{i}": f"https://files.example.com/plugin/P-{i}/manual-{i}.pdf" for i in range(3)}
    lines = [json.dumps({"itemId": item, "fileUrl": url}).encode() for item, url in urls.items()]
    try:
        h.start_all()
        plugin_queues = [q for q in registry.all_queues() if q.startswith("plugin.")]
        assert plugin_queues == ["plugin.enrich", "plugin.download", "plugin.upload", "plugin.write"]
        h.start_worker("plugin", queues=",".join(plugin_queues))
        assert h.publish_lines("plugin", [*lines, b"{not json"]) == 4
        h.wait_idle(timeout=150)

        rows = {r["item_id"]: r for r in h.table(Table("plugin_items")).to_dicts()}
        assert sorted(rows) == sorted(urls), h.logs()
        for item, url in urls.items():
            row, body = rows[item], expected_bytes(url)
            assert row["blob_path"] == f"{item}/manual-{item[-1]}.pdf"
            assert row["file_url"] == url and row["bytes_downloaded"] == len(body)
            assert row["downloaded_at"] is not None and row["created_at"] is not None
            assert h.lake_file("plugin", row["blob_path"]).read_bytes() == body
        assert topic_size(h.settings, dlq) == 1  # the malformed record, in the domain's own DLQ
        assert h.counters("plugin").get("events_dispatched") == 3
    finally:
        h.stop_all()
