"""JSON log lines (``LOG_FORMAT=json``): one object per line, every field redacted.

Each line carries ``ts``, ``level``, ``logger``, ``message`` and, when the record has them (``extra=``
or a task context filter), ``event_id``, ``domain``, ``stage``, ``task_id``, ``attempt`` and the
other keys of ``core.observability.LOG_KEYS``. Every string value passes through
:func:`core.security.redact.sanitize_error` (secrets, signed URLs), tracebacks line by line, and
a field named like a secret (``password``, ``token``, … of ``SENSITIVE_PARAMS``) shows no value.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from core.security.redact import REDACTED, SENSITIVE_PARAMS, sanitize_error

#: Attributes every ``LogRecord`` has; anything else on a record came from ``extra=`` or a filter.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName", "color_message"}
)


def _clean(value: Any, key: str = "") -> Any:
    if key.lower() in SENSITIVE_PARAMS:  # a field named like a secret never shows its value
        return REDACTED
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return sanitize_error(value)
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _clean(v, str(k)) for k, v in value.items()}
    return sanitize_error(str(value))


class JsonFormatter(logging.Formatter):
    """``logging.Formatter`` writing one redacted JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": sanitize_error(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in body:
                body[key] = _clean(value, key)
        if record.exc_info:
            text = self.formatException(record.exc_info)
            body["exception"] = "\n".join(sanitize_error(line) for line in text.splitlines())
        return json.dumps(body, default=str)


def use_json_logs(logger: logging.Logger | None = None) -> None:
    """Give every handler of ``logger`` (default: the root logger) the JSON formatter."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        handler.setFormatter(JsonFormatter())
