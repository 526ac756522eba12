"""Value coercion rules of SPEC §4.4.1 ("Value coercion everywhere")."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domains.claimx import coerce


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("  x ", "x"),
        ("   ", None),
        ("", None),
        (5010001, "5010001"),
        (True, "true"),
    ],
)
def test_text__trims_and_blank_is_none(value: object, expected: str | None) -> None:
    assert coerce.text(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (7, 7),
        ("42", 42),
        (" 42 ", 42),
        ("42.0", 42),
        (42.0, 42),
        (1.5, None),
        ("abc", None),
        ("", None),
        (None, None),
        (True, None),
        (float("nan"), None),
        ("1e3", 1000),
    ],
)
def test_integer__is_lenient_and_bad_is_none(value: object, expected: int | None) -> None:
    assert coerce.integer(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (30.2672, 30.2672),
        ("-97.7431", -97.7431),
        ("x", None),
        (None, None),
        ("inf", None),
        (3, 3.0),
    ],
)
def test_number__parses_floats(value: object, expected: float | None) -> None:
    assert coerce.number(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("Yes", True),
        ("false", False),
        ("no", False),
        ("0", False),
        ("", None),
        (None, None),
        (1, True),
        (0, False),
    ],
)
def test_boolean__accepts_bools_and_truthy_words(value: object, expected: bool | None) -> None:
    assert coerce.boolean(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1834.275, "1834.275"),
        ("12.50", "12.50"),
        (12, "12"),
        ("x", None),
        (None, None),
        (True, None),
    ],
)
def test_decimal_text__keeps_exact_decimal_strings(value: object, expected: str | None) -> None:
    assert coerce.decimal_text(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-05T16:58:12Z", "2026-01-05T16:58:12+00:00"),
        ("2026-01-05T16:58:12", "2026-01-05T16:58:12+00:00"),
        ("2026-01-05T18:58:12+02:00", "2026-01-05T16:58:12+00:00"),
        ("not a date", "not a date"),
        ("  ", None),
        (None, None),
    ],
)
def test_timestamp__normalises_to_utc_iso_and_keeps_unparseable_text(
    value: object, expected: str | None
) -> None:
    assert coerce.timestamp(value) == expected


def test_iso__naive_is_utc() -> None:
    assert coerce.iso(datetime(2026, 1, 1)) == "2026-01-01T00:00:00+00:00"
    assert coerce.iso(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00+00:00"
