"""claimx end to end: sample events through Kafka, enrichment from the simulated ClaimX API,
entity tables, media downloads and the inventory, asserted table by table.

Expected values come from ``samples/expected/claimx_expectations.json`` and the sample API
bodies, with the DECISIONS overrides (media blob paths ``{project}/media/{media_id}_{name}``;
media 880003's expired link refreshed and downloaded; failing handlers dead-lettered as
``permanent`` while their ``claimx_events`` rows are kept).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from core.deadletters import DeadLetterStore
from domains.claimx.models import parse_claimx_record
from domains.names import Table
from ops.expectations import claimx_values, compare_values
from simulator.files import expected_bytes
from tests.harness import Harness, sample_run
from tests.samples import SAMPLES

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

API = SAMPLES / "claimx_api"


def _media_links() -> dict[str, str]:
    links: dict[str, str] = {}
    for name in (
        "GET_export_project_5010001_media.json",
        "GET_export_project_5010002_media.json",
        "GET_export_project_5010001_media__mediaIds_880003__refreshed.json",
    ):
        for item in json.loads((API / name).read_text())["data"]:
            links[str(item["mediaID"])] = item["fullDownloadLink"]  # the refreshed file comes last
    return links


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with sample_run(
        tmp_path_factory.mktemp("claimx-e2e"), "claimx", SAMPLES / "claimx_events.jsonl", 22
    ) as harness:
        yield harness


def _rows(run: Harness, table: Table, key: str) -> dict:
    frame = run.table(table)
    assert frame[key].n_unique() == frame.height, f"duplicate keys in {table}"
    return {row[key]: row for row in frame.to_dicts()}


def test_claimx_events__one_row_per_derived_event_id(run: Harness) -> None:
    """Line 21 (snake_case, own source id) derives the same id as line 2: one event, one row."""
    ids = []
    for line in (SAMPLES / "claimx_events.jsonl").read_bytes().splitlines():
        ids.append(parse_claimx_record(line, kafka_timestamp=None).event_id)
    rows = _rows(run, Table.CLAIMX_EVENTS, "event_id")
    assert set(rows) == set(ids) and len(rows) == 21
    assert "src-evt-000021" not in rows
    assert rows[ids[19]]["project_id"] == "5099999"  # the 404 project's event row is kept


def test_claimx_projects__fetched_rows_merged_with_flag_rows(run: Harness) -> None:
    projects = _rows(run, Table.CLAIMX_PROJECTS, "project_id")
    assert set(projects) == {"5010001", "5010002"}
    p1, p2 = projects["5010001"], projects["5010002"]
    assert p1["master_file_name"] == "MFN-2026-000451"
    assert p1["policyholder_invited_at"] is not None and p1["policyholder_joined_at"] is not None
    assert p2["xa_autolink_fail"] is True and p2["xa_autolink_fail_at"] is not None
    assert p2["contents_task_sent"] is True
    assert p2["contents_task_at"] == datetime(2026, 1, 5, 17, 25, tzinfo=UTC)
    assert p1["customer_first_name"] and p2["company_name"] is not None  # fetched columns kept


def test_claimx_contacts__keyed_and_primary_flags_from_the_project(run: Harness) -> None:
    frame = run.table(Table.CLAIMX_CONTACTS)
    rows = {(r["project_id"], r["contact_email"], r["contact_type"]): r for r in frame.to_dicts()}
    assert len(rows) == frame.height
    assert set(rows) == {
        ("5010001", "jordan.testperson@example.com", "POLICYHOLDER"),
        ("5010001", "adjuster.one@example.com", "CLAIM_REP"),
        ("5010001", "desk.adjuster@example.com", "CLAIM_REP"),
        ("5010002", "taylor.demo@example.org", "POLICYHOLDER"),
    }
    assert rows[("5010001", "jordan.testperson@example.com", "POLICYHOLDER")]["is_primary_contact"] is True
    rep = rows[("5010001", "adjuster.one@example.com", "CLAIM_REP")]
    assert rep["is_primary_contact"] is True and rep["master_file_name"] == "MFN-2026-000451"


def test_claimx_media_tasks_links_video__exact_keys_and_values(run: Harness) -> None:
    media = _rows(run, Table.CLAIMX_ATTACHMENT_METADATA, "media_id")
    assert set(media) == {"880001", "880002", "880003", "880101"}  # 889999 is absent from the API
    assert media["880002"]["task_assignment_id"] == "7700001"
    assert isinstance(media["880001"]["latitude"], float)
    tasks = _rows(run, Table.CLAIMX_TASKS, "assignment_id")
    assert {k: v["task_id"] for k, v in tasks.items()} == {7700001: 45001, 7700002: 32513}
    assert set(_rows(run, Table.CLAIMX_TASK_TEMPLATES, "task_id")) == {45001, 32513}
    assert set(_rows(run, Table.CLAIMX_EXTERNAL_LINKS, "link_id")) == {990001, 990002}
    video = _rows(run, Table.CLAIMX_VIDEO_COLLAB, "video_collaboration_id")
    assert set(video) == {660001}  # 660777 belongs to another claim; 5010002 has no data
    assert video[660001]["claim_rep_full_name"] == "Avery Adjuster"
    assert video[660001]["total_time_seconds"] == "1834.275" and video[660001]["number_of_photos"] == 14


def test_claimx_attachments__every_media_file_in_the_lake_byte_for_byte(run: Harness) -> None:
    """Including 880003, whose expired link was refreshed from the API (DECISIONS)."""
    links = _media_links()
    inventory = _rows(run, Table.CLAIMX_ATTACHMENTS, "media_id")
    assert set(inventory) == {"880001", "880002", "880003", "880101"}
    for media_id, row in inventory.items():
        assert row["blob_path"].startswith(f"{row['project_id']}/media/{media_id}_")
        body = expected_bytes(links[media_id])
        assert run.lake_file("claimx", row["blob_path"]).read_bytes() == body
        assert row["bytes_downloaded"] == len(body)
    assert set(run.lake_files("claimx")) == {r["blob_path"] for r in inventory.values()}
    assert run.counters("claimx").get("url_refreshed", 0) >= 1


def test_failing_handlers__end_as_permanent_dead_letters(run: Harness) -> None:
    letters = DeadLetterStore(run.redis).list("claimx")
    errors = sorted(letter.error for letter in letters)
    assert len(letters) == 3
    assert all(letter.category == "permanent" and letter.stage == "enrich" for letter in letters)
    assert any("Missing task_assignment_id" in e for e in errors)
    assert any("889999" in e and "not found" in e for e in errors)
    assert any("404" in e for e in errors)


def test_same_events_again__add_no_row_and_no_file(run: Harness) -> None:
    tables = [t for t in Table if t.value.startswith("claimx_")]
    before = {t: run.table(t).height for t in tables}
    files = run.lake_files("claimx")
    for key in run.redis.scan_iter(match="pipeline:dispatched:*"):  # as if the ledger had expired
        run.redis.delete(key)
    run.publish_file("claimx", SAMPLES / "claimx_events.jsonl")
    run.wait_idle(timeout=180)
    assert {t: run.table(t).height for t in tables} == before
    assert run.lake_files("claimx") == files


def test_sample_expectations__every_column_value_they_give(run: Harness) -> None:
    """The values ``claimx_expectations.json`` states (file_type ``jpg`` as the media row gives it,
    file names, blob paths, task assignment, video and project values), not only row counts."""
    lines = compare_values(
        claimx_values(SAMPLES / "expected" / "claimx_expectations.json"),
        lambda table: run.table(Table(table)).to_dicts(),
    )
    assert not [line for line in lines if not line.endswith(" OK")], "\n".join(lines)
    assert run.table(Table.CLAIMX_ATTACHMENTS).filter(media_id="880001")["file_type"].to_list() == ["jpg"]
