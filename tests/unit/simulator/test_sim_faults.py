"""Fault rules: validation, matching, times, Retry-After."""

from __future__ import annotations

import pytest

from simulator.faults import FaultBook, FaultRule, FaultRuleError


def _rule(**fields: object) -> FaultRule:
    return FaultRule.from_dict({"path_prefix": "/x", "status": 500, **fields})


def test_fault__fires_times_then_clears() -> None:
    book = FaultBook()
    book.add(_rule(times=2))
    assert book.take("GET", "/x/1") is not None
    assert book.take("GET", "/x/2") is not None
    assert book.take("GET", "/x/3") is None
    assert book.rules() == []


def test_fault__times_null_fires_until_cleared() -> None:
    book = FaultBook()
    book.add(_rule(times=None))
    assert all(book.take("GET", "/x") is not None for _ in range(20))
    book.clear()
    assert book.take("GET", "/x") is None


def test_fault__method_and_prefix_must_match() -> None:
    book = FaultBook()
    book.add(_rule(method="post"))
    assert book.take("GET", "/x") is None
    assert book.take("POST", "/y") is None
    assert book.take("POST", "/y", "/x/data") is not None  # any of the request's targets


def test_fault__first_added_matching_rule_wins() -> None:
    book = FaultBook()
    first = book.add(_rule(status=503, times=1))
    book.add(_rule(status=429, times=1))
    rule = book.take("GET", "/x")
    assert rule is not None and (rule.id, rule.status) == (first, 503)
    rule = book.take("GET", "/x")
    assert rule is not None and rule.status == 429


def test_fault__429_defaults_retry_after_to_one_second() -> None:
    assert _rule(status=429).headers() == {"Retry-After": "1"}
    assert _rule(status=503, retry_after=7).headers() == {"Retry-After": "7"}
    assert _rule(status=500).headers() == {}


@pytest.mark.parametrize(
    "bad",
    [
        {"path_prefix": "x", "status": 500},
        {"path_prefix": "/x", "status": 99},
        {"path_prefix": "/x", "status": 500, "times": 0},
        {"path_prefix": "/x", "status": 500, "delay_seconds": -1},
        {"path_prefix": "/x"},
        {"path_prefix": "/x", "status": 500, "colour": "red"},
    ],
)
def test_fault__malformed_rules_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(FaultRuleError):
        FaultRule.from_dict(bad)


def test_fault__delay_only_rule_is_valid() -> None:
    rule = FaultRule.from_dict({"path_prefix": "/", "delay_seconds": 2})
    assert rule.status is None and rule.delay_seconds == 2
