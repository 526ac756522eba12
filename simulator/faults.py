"""Switchable faults: rules matched against incoming requests (thread-safe, no I/O).

A rule matches a request when its ``method`` (``None`` = any) equals the request method and its
``path_prefix`` is a prefix of the request target — the raw path *with* its query, e.g.
``/claimx-api.example.com/service/cxedirest/export/project/5010001`` — or, for ClaimX API requests,
of the target relative to the API base (``/export/project/5010001``). The first matching rule, in
the order added, fires. A rule fires ``times`` times and is then removed; ``times=None`` fires until
cleared.

What a firing rule does, in this order: wait ``delay_seconds``; then either drop the connection
without answering (``close_connection``), answer ``status`` with ``body`` (and ``Retry-After`` for
429/503 when ``retry_after`` is set; 429 defaults to 1 s), or — with no status — serve the normal
response, cut after ``truncate_at`` body bytes when that is set (the connection is then closed).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

_ALLOWED_KEYS = frozenset(
    {
        "path_prefix",
        "method",
        "status",
        "retry_after",
        "times",
        "delay_seconds",
        "body",
        "content_type",
        "close_connection",
        "truncate_at",
    }
)


class FaultRuleError(ValueError):
    """A fault rule given over the control API is malformed."""


@dataclass
class FaultRule:
    path_prefix: str = "/"
    method: str | None = None
    status: int | None = None
    retry_after: float | None = None
    times: int | None = None
    delay_seconds: float = 0.0
    body: str | None = None
    content_type: str = "text/plain; charset=utf-8"
    close_connection: bool = False
    truncate_at: int | None = None
    id: int = field(default=0)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        """Validate a JSON rule; raise :class:`FaultRuleError` with a readable reason."""
        if not isinstance(data, dict):
            raise FaultRuleError("rule must be a JSON object")
        unknown = set(data) - _ALLOWED_KEYS
        if unknown:
            raise FaultRuleError(f"unknown rule keys: {sorted(unknown)}")
        try:
            rule = cls(**data)
        except TypeError as exc:
            raise FaultRuleError(str(exc)) from exc
        rule._validate()
        return rule

    def _validate(self) -> None:
        if not isinstance(self.path_prefix, str) or not self.path_prefix.startswith("/"):
            raise FaultRuleError("path_prefix must be a string starting with '/'")
        if self.method is not None:
            self.method = str(self.method).upper()
        if self.status is not None and not (isinstance(self.status, int) and 100 <= self.status <= 599):
            raise FaultRuleError("status must be an HTTP status code")
        if self.times is not None and (not isinstance(self.times, int) or self.times < 1):
            raise FaultRuleError("times must be a positive integer or null")
        if not isinstance(self.delay_seconds, int | float) or self.delay_seconds < 0:
            raise FaultRuleError("delay_seconds must be >= 0")
        if self.truncate_at is not None and (not isinstance(self.truncate_at, int) or self.truncate_at < 0):
            raise FaultRuleError("truncate_at must be a non-negative integer")
        if self.status is None and not (
            self.delay_seconds or self.close_connection or self.truncate_at is not None
        ):
            raise FaultRuleError("a rule needs a status, delay_seconds, close_connection or truncate_at")

    def matches(self, method: str, targets: tuple[str, ...]) -> bool:
        if self.method is not None and self.method != method:
            return False
        return any(target.startswith(self.path_prefix) for target in targets)

    def headers(self) -> dict[str, str]:
        """Extra response headers of a status fault."""
        retry_after = self.retry_after
        if retry_after is None and self.status == 429:
            retry_after = 1
        if retry_after is None:
            return {}
        seconds = int(retry_after) if float(retry_after).is_integer() else retry_after
        return {"Retry-After": str(seconds)}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultBook:
    """The active rules. ``take`` finds the first match and consumes one of its ``times``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self.fired = 0

    def add(self, rule: FaultRule) -> int:
        with self._lock:
            rule.id = next(self._ids)
            self._rules.append(rule)
            return rule.id

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_dict() for rule in self._rules]

    def take(self, method: str, *targets: str) -> FaultRule | None:
        """The rule that fires for this request, if any (its remaining ``times`` is decremented)."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, targets):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self._rules.remove(rule)
                    self.fired += 1
                    return rule
        return None
