"""Publish raw events (JSON lines) to a domain's raw topic, as the Eventhouse poller would.

Each line is sent as it is - a malformed line too, so the dispatcher's dead-letter path sees
real bad input. The record key is the event's trace id (xact) or project id (claimx) when the
line parses, which keeps one event's redeliveries on one partition.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from confluent_kafka import KafkaException, Producer

from core.settings import Settings
from domains import registry
from domains.names import Domain


def record_key(domain: Domain, line: bytes) -> bytes | None:
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(row, dict):
        return None
    for name in registry.spec_of(domain).record_key_fields:  # the domain declares its key
        if row.get(name) not in (None, ""):
            return str(row[name]).encode()
    return None


def read_lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def new_producer(settings: Settings) -> Producer:
    """An idempotent producer that waits for every in-sync replica."""
    return Producer(
        {
            **settings.kafka_config(),
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 20,
            "compression.type": "lz4",
        }
    )


def publish_lines(
    settings: Settings,
    domain: Domain,
    lines: Iterable[bytes],
    *,
    on_sent: Callable[[int], None] | None = None,
    producer: Producer | None = None,
) -> int:
    """Publish and wait for every delivery report; raises KafkaException if any failed.
    ``producer``: a long-lived one of the caller's (else one is made for this call)."""
    producer = producer or new_producer(settings)
    topic = settings.topic_for(domain.value)
    errors: list[str] = []

    def _report(err, _msg) -> None:  # librdkafka callback
        if err is not None:
            errors.append(str(err))

    sent = 0
    for line in lines:
        while True:
            try:
                producer.produce(topic, value=line, key=record_key(domain, line), on_delivery=_report)
                break
            except BufferError:
                producer.poll(0.5)
        sent += 1
        if on_sent and sent % 100 == 0:
            on_sent(100)
        producer.poll(0)
    remaining = producer.flush(60)
    if on_sent:
        on_sent(sent % 100)
    if remaining or errors:
        raise KafkaException(f"{len(errors) + remaining} of {sent} records not delivered: {errors[:3]}")
    return sent
