"""Kafka admin helper for scripts/stack.sh: readiness probe and idempotent topic creation.

Usage (from the repository root or anywhere; the repo root is put on sys.path):

    python3 scripts/kafka/admin.py ready  --bootstrap 127.0.0.1:9092 [--timeout 2]
    python3 scripts/kafka/admin.py topics --bootstrap 127.0.0.1:9092

Contract:
* ``ready`` exits 0 when the broker answers a metadata request within the timeout, 1 otherwise.
* ``topics`` makes every pipeline topic exist with at least its partition count (raw topics 6,
  dead-letter topics 3, replication factor 1). Existing topics with fewer partitions are grown;
  topics with more are left alone (partitions cannot shrink). Prints one line per topic and exits
  0 when all are as required, 1 otherwise. Topic names come from ``domains.names``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from domains import registry
from domains.names import dlq_topic, raw_topic

RAW_PARTITIONS = 6
DLQ_PARTITIONS = 3
REPLICATION_FACTOR = 1
_REQUEST_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int


def pipeline_topics() -> list[TopicSpec]:
    """The topics the local stack provides: per domain one raw topic and one dead-letter topic."""
    specs: list[TopicSpec] = []
    for domain in registry.domains():  # plug-ins (DOMAIN_PLUGINS) included
        specs.append(TopicSpec(raw_topic(domain), RAW_PARTITIONS))
        specs.append(TopicSpec(dlq_topic(domain), DLQ_PARTITIONS))
    return specs


def _admin(bootstrap: str) -> AdminClient:
    # Silence librdkafka's own connection-refused chatter while the broker is still starting.
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, "socket.timeout.ms": 5000})


def ready(bootstrap: str, timeout_seconds: float) -> bool:
    """True when the broker returns cluster metadata within ``timeout_seconds``."""
    try:
        metadata = _admin(bootstrap).list_topics(timeout=timeout_seconds)
    except KafkaException:
        return False
    return bool(metadata.brokers)


def ensure_topics(bootstrap: str, specs: list[TopicSpec]) -> bool:
    """Create missing topics and grow short ones; True when every topic now meets its spec."""
    admin = _admin(bootstrap)
    existing = admin.list_topics(timeout=_REQUEST_TIMEOUT_SECONDS).topics
    ok = True
    missing = [s for s in specs if s.name not in existing]
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(s.name, num_partitions=s.partitions, replication_factor=REPLICATION_FACTOR)
                for s in missing
            ],
            request_timeout=_REQUEST_TIMEOUT_SECONDS,
        )
        for name, future in futures.items():
            ok &= _report(name, "created", future)
    short = [s for s in specs if s.name in existing and len(existing[s.name].partitions) < s.partitions]
    if short:
        futures = admin.create_partitions(
            [NewPartitions(s.name, s.partitions) for s in short], request_timeout=_REQUEST_TIMEOUT_SECONDS
        )
        for name, future in futures.items():
            ok &= _report(name, "grown", future)
    for spec in specs:
        if spec.name in existing and spec not in short:
            print(f"topic {spec.name}: exists ({len(existing[spec.name].partitions)} partitions)")
    return ok


def _report(name: str, verb: str, future: object) -> bool:
    try:
        future.result()  # type: ignore[attr-defined]  # a concurrent Future, typed loosely here
    except KafkaException as exc:
        error = exc.args[0]
        if error.name() == "TOPIC_ALREADY_EXISTS":  # raced with another creator: fine
            print(f"topic {name}: exists")
            return True
        print(f"topic {name}: FAILED ({error.str()})", file=sys.stderr)
        return False
    print(f"topic {name}: {verb}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["ready", "topics"])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds, for `ready`")
    args = parser.parse_args(argv)
    if args.command == "ready":
        return 0 if ready(args.bootstrap, args.timeout) else 1
    return 0 if ensure_topics(args.bootstrap, pipeline_topics()) else 1


if __name__ == "__main__":
    sys.exit(main())
