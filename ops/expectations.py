"""The figures a run on the sample events must produce, derived from ``samples/expected/`` with
the DECISIONS overrides (claimx media 880003 is refreshed and downloaded; failed handlers are
permanent dead letters; a claimx row whose derived id repeats another's is one event)."""

from __future__ import annotations

import json
from pathlib import Path


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


def actual_figures(domain: str, summary) -> dict[str, int]:  # noqa: ANN001 - ops.status.Summary
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
