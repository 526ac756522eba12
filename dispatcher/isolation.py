"""Per-record failure isolation for the dispatcher (issue 7 item 1): one record's exception is
that record's, never the batch's.

* :func:`record_time` / :func:`error_text`: a record's timestamp and an exception's text, neither of
  which may raise, whatever the record holds.
* :func:`plan_isolated`: plan a batch together; when that raises, plan each event alone to find
  the ones that fail (each handed to ``failed``) and plan the rest together again.
* :func:`enqueue_isolated`: enqueue all plans in one go; on a *data* error (serialisation) enqueue
  them one by one and hand each plan that fails to ``failed``. Any other error is the
  infrastructure's and propagates: the batch is read again, and no valid event is dead-lettered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import redis
from confluent_kafka import KafkaException, Message
from kombu.exceptions import EncodeError, OperationalError

from core.security.redact import sanitize_error
from domains.canvas import EventPlan, ParsedEvent

#: Failures after which the current batch is re-read (nothing of it was committed).
RECOVERABLE = (redis.RedisError, OperationalError, KafkaException, ConnectionError, OSError)
#: What an event's own data can make enqueueing raise (serialising its rows or task arguments).
#: Anything else while enqueueing (a closed pool, a broker error) is the infrastructure's: it
#: fails the batch, which is read again, and never dead-letters a valid event.
DATA_ERRORS = (ValueError, TypeError, RecursionError, OverflowError, LookupError, EncodeError)


def error_text(exc: BaseException) -> str:
    try:
        text = sanitize_error(str(exc))
    except Exception:  # noqa: BLE001 - the reason of a poison record may itself be hostile
        text = ""
    return text or type(exc).__name__


def is_oom(exc: BaseException | None) -> bool:
    """A write refused by a full Redis, raised as is or wrapped (kombu, Celery)."""
    for _ in range(5):
        if exc is None:
            return False
        if isinstance(exc, redis.exceptions.OutOfMemoryError) or "OOM command not allowed" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def record_time(msg: Message) -> datetime | None:
    """The record's timestamp, or None when it has none a datetime can hold (the year 10000): only
    an event without a time of its own needs it, and that event then fails its parse by name."""
    _ts_type, ts_ms = msg.timestamp()
    if not ts_ms or ts_ms <= 0:
        return None
    try:
        return datetime.fromtimestamp(ts_ms / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def plan_isolated(
    plan_batch: Callable[[Sequence[ParsedEvent], datetime], list[EventPlan]],
    events: list[tuple[ParsedEvent, Message]],
    now: datetime,
    failed: Callable[[Message, Exception], Any],
) -> list[EventPlan]:
    try:
        return plan_batch([p for p, _ in events], now)
    except RECOVERABLE:
        raise
    except Exception:  # noqa: BLE001 - find the event(s) that fail, keep the rest
        pass
    good = []
    for parsed, msg in events:
        try:
            plan_batch([parsed], now)
        except Exception as exc:  # noqa: BLE001 - this event's failure is isolated and dead-lettered
            failed(msg, exc)
            continue
        good.append(parsed)
    try:
        return plan_batch(good, now)
    except Exception:  # noqa: BLE001 - together they still fail: plan them one by one
        return [plan for parsed in good for plan in plan_batch([parsed], now)]


def enqueue_isolated(
    enqueue: Callable[[list[EventPlan]], int],
    plans: list[EventPlan],
    failed: Callable[[EventPlan, Exception], Any],
) -> tuple[list[EventPlan], int]:
    """Returns the plans enqueued and the signatures sent (a message sent twice, by the first
    attempt and again alone, is harmless: as on a re-read, every stage is idempotent)."""
    try:
        return plans, enqueue(plans)
    except RECOVERABLE:
        raise
    except DATA_ERRORS:
        pass  # some event's data: find it below
    sent, signatures = [], 0
    for plan in plans:
        try:
            signatures += enqueue([plan])
        except RECOVERABLE:
            raise
        except DATA_ERRORS as exc:
            failed(plan, exc)
            continue
        sent.append(plan)
    return sent, signatures
