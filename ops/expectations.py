"""The figures a run on the sample events must produce, derived from ``samples/expected/`` with
the DECISIONS overrides (claimx media 880003 is refreshed and downloaded; failed handlers are
permanent dead letters; a claimx row whose derived id repeats another's is one event)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domains.ids import xact_media_id
from ops.status import Summary


def xact_figures(expected_file: Path) -> dict[str, int]:
    spec = json.loads(expected_file.read_text())
    events = [e for e in spec["events"] if e["outcome"] not in ("parse_error", "duplicate_skipped")]
    attachments = [a for e in events for a in e.get("attachments", [])]
    completed = [
        a
        for a in attachments
        if a["ingest"] == "task_created" and a["download"].startswith("completed (when")
    ]
    failed = [a for a in attachments if a["ingest"] == "task_created" and a not in completed]
    rejected = [a for a in attachments if a["ingest"] == "rejected"]
    orphans = sum(1 for e in events if e["outcome"] == "missing_assignment_id")
    return {
        "events_read": len(spec["events"]),
        "xact_events rows": len(events),
        "files uploaded": len(completed),
        "xact_attachments rows": len(completed),
        "xact_attachments_failed rows": len(failed) + len(rejected) + orphans,
        "dead letters": len(failed),
        "unparseable": sum(1 for e in spec["events"] if e["outcome"] == "parse_error"),
    }


def claimx_figures(expected_file: Path) -> dict[str, int]:
    spec = json.loads(expected_file.read_text())
    lines = spec["events"]
    duplicates = sum(1 for e in lines if "duplicate" in str(e.get("expected", "")))
    media = {d["media_id"] for e in lines for d in e.get("downloads", [])}
    failing = sum(
        1
        for e in lines
        if any(word in str(e.get("expected", "")) for word in ("PERMANENT", "permanent, non-retryable"))
    )
    return {
        "events_read": len(lines),
        "claimx_events rows": len(lines) - duplicates,
        "files uploaded": len(media),
        "claimx_attachments rows": len(media),
        "dead letters": failing,
        "unparseable": 0,
    }


def actual_figures(domain: str, summary: Summary) -> dict[str, int]:
    counts = summary.counters.get(domain, {})
    figures = {
        "events_read": counts.get("events_read", 0),
        "files uploaded": counts.get("uploaded", 0),
        "dead letters": summary.dead_letters.get(domain, 0),
        "unparseable": summary.kafka_dead_letters.get(domain, 0),
    }
    for table, rows in summary.tables.items():
        figures[f"{table} rows"] = rows
    return figures


def compare(expected: dict[str, int], actual: dict[str, int]) -> list[str]:
    """Lines ``name expected actual OK|MISMATCH`` for every expected figure."""
    return [
        f"  {name:30} expected {value:>4}  got {actual.get(name, 0):>4}  "
        f"{'OK' if actual.get(name, 0) == value else 'MISMATCH'}"
        for name, value in expected.items()
    ]


# --- column values --------------------------------------------------------------------------
# Row counts alone cannot catch a wrong value (e.g. claimx file_type "JPG" instead of "jpg"), so
# every value the expectation files give for a row of a table is compared too.

#: DECISIONS "How to read the samples' expected outcomes": xact line -> (blob_path, file_type).
XACT_OVERRIDES: dict[int, tuple[str, str]] = {
    16: (
        "firstNoticeOfLossReceived/A-7100462/3f9b2c1e-7a44-4c1d-9e2b-0a1b2c3d4e16/"
        "A-7100462_FNOL_fnol_statement.pdf",
        "PDF",
    ),
    18: (
        "documentsReceived/A-7100464/3f9b2c1e-7a44-4c1d-9e2b-0a1b2c3d4e18/A-7100464_water damage closeup.png",
        "PNG",
    ),
}


@dataclass(frozen=True)
class ValueExpectation:
    """Expected column values of some rows of one table: ``rows[key][column] = value``."""

    table: str
    key_column: str
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def expect(self, key: object, **values: Any) -> None:
        self.rows.setdefault(str(key), {}).update(values)


def xact_values(expected_file: Path) -> list[ValueExpectation]:
    """Per attachment: the stored row's blob path, type and URL; the failed row's status."""
    spec = json.loads(expected_file.read_text())
    stored = ValueExpectation("xact_attachments", "media_id")
    failed = ValueExpectation("xact_attachments_failed", "media_id")
    for event in spec["events"]:
        if event["outcome"] in ("parse_error", "duplicate_skipped"):
            continue
        for att in event.get("attachments", []):
            media_id = xact_media_id(event["trace_id"], att["attachment_url"])
            blob_path, file_type = XACT_OVERRIDES.get(
                event["line"], (att.get("blob_path"), att.get("file_type"))
            )
            if att["ingest"] == "rejected":
                failed.expect(media_id, status="rejected", attachment_url=att["attachment_url"])
            elif att["download"].startswith("completed (when"):
                stored.expect(
                    media_id, blob_path=blob_path, file_type=file_type, attachment_url=att["attachment_url"]
                )
            else:
                failed.expect(media_id, status="failed_permanent", blob_path=blob_path)
    return [stored, failed]


def claimx_values(expected_file: Path) -> list[ValueExpectation]:
    """Media (type, name, blob path with DECISIONS' ``{media_id}_`` prefix), the media row's task
    assignment, the video row, and the project values the file states."""
    spec = json.loads(expected_file.read_text())
    stored = ValueExpectation("claimx_attachments", "media_id")
    media = ValueExpectation("claimx_attachment_metadata", "media_id")
    video = ValueExpectation("claimx_video_collab", "video_collaboration_id")
    projects = ValueExpectation("claimx_projects", "project_id")
    for event in spec["events"]:
        for download in event.get("downloads", []):
            media_id = download["media_id"]
            folder, name = download["blob_path_current"].rsplit("/", 1)
            stored.expect(media_id, blob_path=f"{folder}/{media_id}_{name}")
            for column in ("file_type", "file_name"):
                if column in download:  # the stored row and the media row carry the same value
                    stored.expect(media_id, **{column: download[column]})
                    media.expect(media_id, **{column: download[column]})
        if "media_row_task_assignment_id" in event:  # "7700001 (documented key …)"
            assignment = str(event["media_row_task_assignment_id"]).split()[0]
            media.expect(event["media_id"], task_assignment_id=assignment)
        if "video_row" in event:
            row = event["video_row"]
            video.expect(row["video_collaboration_id"], **row)
        for name in ("project_row", "project_row_override"):
            if name in event:
                projects.expect(event["project_id"], **event[name])
    return [stored, media, video, projects]


def same_value(actual: object, expected: object) -> bool:
    """Equal, or equal as text (ids and decimals are strings in some tables, numbers in the file)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    return actual == expected or (actual is not None and str(actual) == str(expected))


def compare_values(
    expectations: list[ValueExpectation], read: Callable[[str], list[dict[str, Any]]]
) -> list[str]:
    """A line ``{table} values expected N got M OK|MISMATCH`` per table (N expected values, M
    matching), then one line per wrong value (at most five per table)."""
    lines: list[str] = []
    for exp in expectations:
        actual = {str(row[exp.key_column]): row for row in read(exp.table)}
        wrong: list[str] = []
        total = 0
        for key, columns in exp.rows.items():
            for column, value in columns.items():
                total += 1
                got = actual[key].get(column) if key in actual else "<no row>"
                if not same_value(got, value):
                    wrong.append(f"    {exp.table}[{key}].{column}: expected {value!r} got {got!r}")
        verdict = "OK" if not wrong else "MISMATCH"
        lines.append(
            f"  {exp.table + ' values':30} expected {total:>4}  got {total - len(wrong):>4}  {verdict}"
        )
        lines += wrong[:5]
    return lines
