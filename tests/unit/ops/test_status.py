"""``Status``: what ``idle`` means, and the document ``pipeline status --json`` prints."""

from __future__ import annotations

from dataclasses import replace

from ops.report import render_status
from ops.status import STATUS_SCHEMA, Status

QUIET = Status(
    kafka_lag={"xact.events.raw": 0, "claimx.events.raw": 0},
    queues={"xact.download": 0},
    unacked=0,
    scheduled=0,
    staged={"xact_events": 0},
    in_flight={"attachment_chains": 0, "flush_batch_rows": 0},
    dead_letters={"xact": 0, "claimx": 0},
)


def test_idle__only_when_every_work_measure_is_zero() -> None:
    assert QUIET.idle
    busy = [
        replace(QUIET, kafka_lag={"xact.events.raw": 3}),
        replace(QUIET, kafka_lag={"xact.events.raw": -1}),  # unknown lag is not idle
        replace(QUIET, queues={"xact.download": 1}),
        replace(QUIET, unacked=1),
        replace(QUIET, scheduled=1),
        replace(QUIET, staged={"xact_events": 5}),
        replace(QUIET, in_flight={"attachment_chains": 1, "flush_batch_rows": 0}),
        replace(QUIET, in_flight={"attachment_chains": 0, "a_new_kind_of_work": 2}),
    ]
    assert [s.idle for s in busy] == [False] * len(busy)


def test_idle__open_dead_letters_are_finished_work() -> None:
    assert replace(QUIET, dead_letters={"xact": 4, "claimx": 3}).idle


def test_to_json__schema_idle_and_every_field() -> None:
    document = replace(QUIET, unacked=2).to_json()
    assert document["schema"] == STATUS_SCHEMA == 1
    assert document["idle"] is False
    assert set(document) >= {  # fields are only ever added
        "schema",
        "idle",
        "kafka_lag",
        "queues",
        "unacked",
        "scheduled",
        "staged",
        "in_flight",
        "dead_letters",
    }


def test_render_status__names_only_what_is_not_zero() -> None:
    assert render_status(QUIET) == "idle"
    text = render_status(replace(QUIET, queues={"xact.download": 7, "xact.upload": 0}))
    assert "xact.download: 7" in text and "xact.upload" not in text and text.endswith("busy")
