"""Issue 7 item 2: dead-letter deliveries are confirmed before the batch's offsets are committed.

Real Kafka: a dead-letter topic that does not exist (the broker refuses the record) fails the
batch, which is read again and committed only once the record is delivered; a record whose key
would push the dead-letter record over the broker's limit is still dead-lettered (cut, with its
original size in a header) instead of failing its batch forever.
"""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from dispatcher.deadletter import DeadLetterDeliveryError
from tests.harness import KAFKA
from tests.integration.dispatch_rig import dispatch_rig

pytestmark = pytest.mark.integration


def test_an_undelivered_dead_letter_fails_the_batch_until_it_is_delivered() -> None:
    with dispatch_rig(DLQ_DELIVERY_TIMEOUT_SECONDS="3") as rig:
        admin = AdminClient({"bootstrap.servers": KAFKA})
        admin.delete_topics([rig.dlq_topics["xact"]])[rig.dlq_topics["xact"]].result(30)
        rig.publish("xact", [b"not json at all"])
        dispatcher = rig.dispatcher()
        dispatcher.subscribe()
        try:
            failures = 0
            for _ in range(60):
                try:
                    stats = dispatcher.poll_once(timeout=0.5)
                except DeadLetterDeliveryError:
                    failures += 1
                    break
                assert stats.read == 0, "a batch with an undelivered dead letter must not succeed"
            assert failures == 1
            assert rig.lag() == 1, "the offsets of a batch whose dead letter failed were committed"
            assert dispatcher.metrics.dlq_delivery_failures == 1
            # The topic comes back: the batch is read again (from the committed offsets) and done.
            admin.create_topics([NewTopic(rig.dlq_topics["xact"], num_partitions=1, replication_factor=1)])[
                rig.dlq_topics["xact"]
            ].result(30)
            dispatcher._rejoin()  # what run() does after a failed batch
            rig.drain(dispatcher, timeout=60)
            letters = rig.dlq("xact", expect=1)
            assert [letter.value for letter in letters] == [b"not json at all"]
            assert rig.lag() == 0
        finally:
            dispatcher.close()


def test_a_record_too_large_to_dead_letter_whole_is_cut_and_still_dead_lettered() -> None:
    key = b"k" * 600_000
    value = b"{" + b"x" * 440_000  # not JSON; with the key, more than a producer takes by default
    with dispatch_rig() as rig:
        rig.publish("xact", [value], key=key)
        dispatcher = rig.dispatcher()
        dispatcher.subscribe()
        try:
            rig.drain(dispatcher, timeout=60)
        finally:
            dispatcher.close()
        assert rig.lag() == 0
        (letter,) = rig.dlq("xact", expect=1)
        assert letter.headers["key_truncated"] == b"true"
        assert letter.headers["original_key_size"] == b"600000"
        assert len(letter.key or b"") < len(key)
        assert letter.headers["stage"] == b"parse"
        assert letter.value == value[: len(letter.value)]
        total = (
            len(letter.value)
            + len(letter.key or b"")
            + sum(len(k) + len(v) for k, v in letter.headers.items())
        )
        assert total <= 1_000_000
