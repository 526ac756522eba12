"""The xact raw event (SPEC §2.5) and its parser (SPEC §3.1 step 1).

:class:`XactEvent` accepts ``traceId``/``trace_id``, ``eventId``/``event_id``, ``data`` as an
object or a JSON string, and serialises with ``model_dump(by_alias=True)`` to the camelCase bus
form (``type``, ``version``, ``utcDateTime``, ``traceId``, ``eventId``, ``data`` as an object).
Derived values (``status_subtype``, ``assignment_id``, ``estimate_version``, ``attachments``,
``event_time``) are properties and never serialised.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import PermanentError

_INTEGER = re.compile(r"[+-]?[0-9]+")


class StatusSubtype(StrEnum):
    """Subtypes with a file-name rule of their own (SPEC §3.2); any other subtype is accepted."""

    DOCUMENTS_RECEIVED = "documentsReceived"
    FIRST_NOTICE_OF_LOSS_RECEIVED = "firstNoticeOfLossReceived"
    ESTIMATE_PACKAGE_RECEIVED = "estimatePackageReceived"
    ESTIMATE_CREATED = "estimateCreated"


class XactParseError(PermanentError):
    """A raw xact record that can never become an event (bad JSON, missing ids, bad time)."""


class XactEvent(BaseModel):
    """One xact event, validated. Immutable; use :meth:`with_event_id` to attach the derived id."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    type: str
    version: int | str | None = None
    utc_date_time: str = Field(
        validation_alias=AliasChoices("utcDateTime", "utc_date_time"), serialization_alias="utcDateTime"
    )
    trace_id: str = Field(validation_alias=AliasChoices("traceId", "trace_id"), serialization_alias="traceId")
    event_id: str | None = Field(
        default=None, validation_alias=AliasChoices("eventId", "event_id"), serialization_alias="eventId"
    )
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type", "trace_id", mode="before")
    @classmethod
    def _required_text(cls, value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("must be a non-blank string")
        return value.strip()

    @field_validator("event_id", mode="before")
    @classmethod
    def _optional_text(cls, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("must be a string")
        return value.strip() or None

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: object) -> int | str | None:
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            text = value.strip()
            return int(text) if _INTEGER.fullmatch(text) else text
        raise ValueError("must be a number or a string")

    @field_validator("utc_date_time", mode="before")
    @classmethod
    def _timestamp(cls, value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("must be a non-blank ISO-8601 string")
        _parse_utc(value.strip())  # raises ValueError with a clear message
        return value.strip()

    @field_validator("data", mode="before")
    @classmethod
    def _data(cls, value: object) -> dict[str, Any]:
        # SPEC §2.5: data may arrive as a JSON string; anything unusable is treated as empty.
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return {}
        return value if isinstance(value, dict) else {}

    # --- derived (never serialised) -----------------------------------------------------------

    @property
    def status_subtype(self) -> str:
        """Last dot-separated segment of ``type`` (``documentsReceived``)."""
        return self.type.rsplit(".", 1)[-1]

    @property
    def event_time(self) -> datetime:
        """``utcDateTime`` as an aware UTC datetime (a naive value is taken as UTC)."""
        return _parse_utc(self.utc_date_time)

    @property
    def assignment_id(self) -> str | None:
        """``data.assignmentId`` trimmed; ``None`` when missing, blank or not a scalar."""
        return _scalar_text(self.data.get("assignmentId"))

    @property
    def estimate_version(self) -> str | None:
        """``data.estimateVersion`` trimmed; ``None`` when missing, blank or not a scalar."""
        return _scalar_text(self.data.get("estimateVersion"))

    @property
    def attachments(self) -> list[str]:
        """Attachment URLs: non-string and blank entries dropped, trimmed, order kept, repeats removed."""
        raw = self.data.get("attachments")
        if not isinstance(raw, list):
            return []
        urls = (item.strip() for item in raw if isinstance(item, str))
        return list(dict.fromkeys(url for url in urls if url))

    def with_event_id(self, event_id: str) -> XactEvent:
        """A copy carrying ``event_id`` (set by the dispatcher, SPEC §3.1 step 2)."""
        return self.model_copy(update={"event_id": event_id})

    def to_bus(self) -> dict[str, Any]:
        """The camelCase bus form: ``model_dump(by_alias=True)``."""
        return self.model_dump(by_alias=True)


def parse_xact_record(raw: bytes | str | dict[str, Any]) -> XactEvent:
    """Decode and validate one raw record; raise :class:`XactParseError` saying what is wrong.

    Accepts the Kafka value (bytes/str of JSON) or an already-decoded dict. Error messages name
    the offending field but never echo field values (URLs may carry signatures).
    """
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise XactParseError(f"xact record is not UTF-8: {exc.reason} at byte {exc.start}") from None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise XactParseError(f"xact record is not valid JSON: {exc.msg} at char {exc.pos}") from None
        except RecursionError:
            raise XactParseError("xact record is nested too deeply to parse") from None
    if not isinstance(raw, dict):
        raise XactParseError(f"xact record must be a JSON object, got {type(raw).__name__}")
    try:
        return XactEvent.model_validate(raw)
    except ValidationError as exc:
        raise XactParseError(f"invalid xact event: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    names = {"trace_id": "traceId", "utc_date_time": "utcDateTime", "event_id": "eventId"}
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(names.get(str(part), str(part)) for part in error["loc"]) or "record"
        message = "is required" if error["type"] == "missing" else error["msg"].removeprefix("Value error, ")
        problems.append(f"{field} {message}")
    return "; ".join(problems)


def _parse_utc(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("must be an ISO-8601 date-time") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _scalar_text(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = str(value).strip()
    return text or None
