"""Dead-letter records on ``{domain}.events.dlq``, each delivery confirmed before offsets move.

Contract:

* :meth:`DeadLetterProducer.send` produces one record that could not be dispatched: the original
  value and key with the reason in headers (``error``, ``error_type``, ``stage`` = ``parse`` /
  ``plan`` / ``enqueue``, ``source_topic/partition/offset``, ``failed_at``). A record is always
  sent, whatever its size: value, key and reason are cut to fit the broker's limit, and each cut
  is said in a header with the original size (``value_truncated`` + ``original_size``,
  ``key_truncated`` + ``original_key_size``, ``error_truncated``). The whole record stays in the
  source topic at the offset in the headers.
* :meth:`confirm` waits for every delivery report of the batch and raises
  :class:`DeadLetterDeliveryError` if any record was not acknowledged by the broker (``acks=all``).
  The dispatcher confirms *before* it commits the batch's offsets, so a failed delivery re-reads
  the batch instead of losing the record.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from confluent_kafka import KafkaError, KafkaException, Message, Producer

#: The most bytes a dead-letter record (value + key + headers) may take. librdkafka's default
#: ``message.max.bytes`` is 1,000,000 and the broker's 1,048,588; this leaves room for the framing.
DLQ_MAX_RECORD_BYTES = 900_000
#: Keys are usually ids; a longer one is cut to this (it only decides the DLQ partition).
DLQ_MAX_KEY_BYTES = 16_384
#: The reason header is cut to this many bytes (a validation message may quote the whole input).
DLQ_MAX_ERROR_BYTES = 4_096


class DeadLetterDeliveryError(KafkaException):
    """A dead-letter record was not acknowledged: the batch must not be committed (it is re-read)."""


def _cut(data: bytes, limit: int) -> tuple[bytes, bool]:
    return (data, False) if len(data) <= limit else (data[:limit], True)


class DeadLetterProducer:
    def __init__(self, kafka_config: dict[str, str], *, delivery_timeout_seconds: float) -> None:
        self._timeout = delivery_timeout_seconds
        self._producer = Producer(
            {
                **kafka_config,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                # A record the broker does not take within the timeout fails its delivery report.
                "message.timeout.ms": max(1000, int(delivery_timeout_seconds * 1000)),
            }
        )
        self._outstanding = 0
        self._failures: list[str] = []
        self._generation = 0  # reports of a batch already given up on are ignored

    def _reporter(self):
        generation = self._generation

        def _report(err: KafkaError | None, _msg: Message) -> None:
            if generation != self._generation:
                return
            self._outstanding -= 1
            if err is not None:
                self._failures.append(str(err))

        return _report

    def send(
        self,
        topic: str,
        msg: Message,
        *,
        reason: str,
        error_type: str,
        stage: str,
    ) -> None:
        value = msg.value() or b""
        key = msg.key()
        error, error_cut = _cut(reason.encode("utf-8", "replace"), DLQ_MAX_ERROR_BYTES)
        headers = [
            ("error", error),
            ("error_type", error_type.encode()[:200]),
            ("stage", stage.encode()),
            ("source_topic", (msg.topic() or "").encode()),
            ("source_partition", str(msg.partition()).encode()),
            ("source_offset", str(msg.offset()).encode()),
            ("failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        if error_cut:
            headers.append(("error_truncated", b"true"))
        if key is not None:
            key, key_cut = _cut(key, DLQ_MAX_KEY_BYTES)
            if key_cut:
                headers += [("key_truncated", b"true"), ("original_key_size", str(len(msg.key())).encode())]
        used = len(key or b"") + sum(len(k) + len(v) + 16 for k, v in headers) + 200
        value_room = DLQ_MAX_RECORD_BYTES - used
        if len(value) > value_room:
            headers += [("value_truncated", b"true"), ("original_size", str(len(value)).encode())]
            value = value[: max(0, value_room - 64)]
        self._produce(topic, value, key, headers)

    def _produce(self, topic: str, value: bytes, key: bytes | None, headers: list) -> None:
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=self._reporter()
                )
                self._outstanding += 1
                return
            except BufferError:  # the local queue is full: let deliveries drain, then retry
                if time.monotonic() > deadline:
                    raise DeadLetterDeliveryError("dead-letter producer queue stayed full") from None
                self._producer.poll(0.1)

    def confirm(self) -> None:
        """Wait for every outstanding delivery report; raise if any record was not delivered."""
        if self._outstanding:
            self._producer.flush(self._timeout)
        failures, self._failures = self._failures, []
        outstanding, self._outstanding = self._outstanding, 0
        if outstanding or failures:
            # Undelivered records may still arrive later; a re-read sends them again (duplicates on
            # a dead-letter topic are harmless, a lost record is not).
            self._generation += 1
            raise DeadLetterDeliveryError(
                f"{len(failures) + max(outstanding, 0)} dead-letter record(s) not delivered: {failures[:3]}"
            )

    def close(self) -> None:
        self._producer.flush(min(self._timeout, 10))
