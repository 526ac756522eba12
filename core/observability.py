"""Observability names in one place (STYLE §13): the pipeline's counters and log keys.

Counters are per-domain Redis hashes (``core.state.Counters``), read by ``pipeline summary``.
"""

from __future__ import annotations

from enum import StrEnum


class Metric(StrEnum):
    # dispatcher
    EVENTS_READ = "events_read"
    EVENTS_DISPATCHED = "events_dispatched"
    DUPLICATES_SKIPPED = "duplicates_skipped"
    PARSE_ERRORS = "parse_errors"
    EVENTS_WITHOUT_ATTACHMENTS = "events_without_attachments"
    EVENTS_MISSING_ASSIGNMENT_ID = "events_missing_assignment_id"
    ATTACHMENTS_DISPATCHED = "attachments_dispatched"
    ATTACHMENTS_REJECTED = "attachments_rejected"
    # stages
    ENRICHED = "enriched"
    ENRICH_SKIPPED_UNKNOWN_TYPE = "enrich_skipped_unknown_type"
    API_CALLS = "api_calls"
    DOWNLOADED = "downloaded"
    BYTES_DOWNLOADED = "bytes_downloaded"
    DOWNLOAD_SKIPPED_DONE = "download_skipped_done"
    URL_REFRESHED = "url_refreshed"
    UPLOADED = "uploaded"
    BYTES_UPLOADED = "bytes_uploaded"
    INVENTORY_STAGED = "inventory_staged"
    WRITE_ROWS_ALREADY_STAGED = "write_rows_already_staged"
    DEAD_LETTERS = "dead_letters"
    CHAINS_RESTARTED = "chains_restarted"


def retried(stage: str) -> str:
    return f"{stage}_retried"


def requeued_circuit_open(stage: str) -> str:
    return f"{stage}_requeued_circuit_open"


def dead_letters_by(reason: str) -> str:
    return f"dead_letters_{reason}"


def staged(table: str) -> str:
    return f"staged_{table}"


#: Keys every stage log record carries (``extra=``), so logs can be joined across stages.
LOG_KEYS = ("event_id", "domain", "stage", "attempt", "key", "category")
