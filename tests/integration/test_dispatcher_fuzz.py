"""Issue 7 item 1: a property-based test of the real dispatcher on real Kafka topics and Redis.

Hypothesis generates batches of hostile records - random bytes, invalid UTF-8, JSON of the wrong
type, valid events with one field replaced by a wrong type, an extreme number or date, a deep
nesting or a huge string, record timestamps from 1970 to the end of int64 - mixed with valid
events of both domains. Each batch is published to the rig's raw topics and dispatched. Properties:

* ``poll_once`` never raises (the dispatcher never exits);
* every record read is dispatched, dead-lettered or skipped as a duplicate, and every valid event
  is dispatched (its id is in the ledger);
* the committed offsets move past every record (lag 0), and the dead-letter topics hold exactly
  the records counted as dead-lettered.

Seeded (``derandomize``) and bounded: the default run takes well under a minute; the ``slow``
variant (``RUN_SLOW=1``, ``make test-fault``) runs many more examples.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from domains.ids import xact_event_id
from simulator import generate
from tests.harness import KAFKA
from tests.integration.dispatch_rig import DispatchRig, dispatch_rig

pytestmark = pytest.mark.integration

_XACT = generate.xact_events(20, attachments_per_event=2, seed=11)
_CLAIMX = generate.claimx_events(20, seed=12)
_serial = itertools.count()

EXTREME_DATES = st.sampled_from(
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "10000-01-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-02-02T25:61:61Z",
        "-0001-01-01T00:00:00Z",
        "0000-00-00",
        "",
        " ",
        "NaN",
    ]
)
BIG_INTS = st.sampled_from([10**400, -(10**400), 2**63, -(2**63) - 1, 2**1000, 10**18, -1, 0])
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    BIG_INTS,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    EXTREME_DATES,
)
JSON_VALUES = st.recursive(
    LEAVES,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=12,
)
DEEP = "__deep__"
HUGE = "__huge__"
XACT_FIELDS = ["type", "version", "utcDateTime", "traceId", "eventId", "data", "extra"]
XACT_DATA_FIELDS = ["attachments", "assignmentId", "adm", "contact", "dateTime"]
CLAIMX_FIELDS = ["eventType", "projectId", "mediaId", "taskAssignmentId", "IngestionTime", "masterFileName"]


def _dumps(row: object) -> bytes:
    return json.dumps(row, allow_nan=True).encode()


def _splice(raw: bytes, depth: int, huge: int) -> bytes:
    raw = raw.replace(f'"{DEEP}"'.encode(), b"[" * depth + b"]" * depth)
    return raw.replace(f'"{HUGE}"'.encode(), b'"' + "\u00e9".encode() * huge + b'"')


@st.composite
def xact_valid(draw) -> tuple[str, bytes, str]:
    row = dict(draw(st.sampled_from(_XACT)))
    row["traceId"] = f"fuzz-{os.getpid()}-{next(_serial)}"
    return "xact", _dumps(row), row["traceId"]


@st.composite
def claimx_valid(draw) -> tuple[str, bytes, None]:
    row = dict(draw(st.sampled_from(_CLAIMX)))
    row["projectId"] = str(7_000_000 + next(_serial))
    return "claimx", _dumps(row), None


@st.composite
def mutated(draw) -> tuple[str, bytes, None]:
    domain = draw(st.sampled_from(["xact", "claimx"]))
    row = dict(draw(st.sampled_from(_XACT if domain == "xact" else _CLAIMX)))
    value = draw(st.one_of(JSON_VALUES, st.just(DEEP), st.just(HUGE)))
    if domain == "xact" and draw(st.booleans()):
        row["data"] = dict(row["data"], **{draw(st.sampled_from(XACT_DATA_FIELDS)): value})
    else:
        row[draw(st.sampled_from(XACT_FIELDS if domain == "xact" else CLAIMX_FIELDS))] = value
    depth = draw(st.integers(1, 1200))
    huge = draw(st.integers(1, 300_000))
    return domain, _splice(_dumps(row), depth, huge), None


@st.composite
def garbage(draw) -> tuple[str, bytes, None]:
    domain = draw(st.sampled_from(["xact", "claimx"]))
    kind = draw(st.sampled_from(["bytes", "utf8", "json"]))
    if kind == "bytes":
        return domain, draw(st.binary(max_size=300)), None
    if kind == "utf8":
        raw = _dumps(draw(st.sampled_from(_XACT if domain == "xact" else _CLAIMX)))
        at = draw(st.integers(0, len(raw) - 1))
        return (
            domain,
            raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"])) + raw[at:],
            None,
        )
    return domain, _splice(_dumps(draw(JSON_VALUES)), draw(st.integers(1, 1200)), 10), None


RECORDS = st.lists(
    st.tuples(
        st.one_of(xact_valid(), claimx_valid(), mutated(), mutated(), garbage()),
        st.one_of(st.none(), st.integers(1, 2**63 - 1)),  # the record's timestamp (ms)
        st.one_of(st.none(), st.binary(max_size=40)),  # its key
    ),
    min_size=80,
    max_size=200,
)


@pytest.fixture()
def rig() -> Iterator[DispatchRig]:
    # No worker drains the queues here, so the long run's ~10,000 chains in flight would make
    # backpressure pause intake (as designed, and tested in test_dispatcher_backpressure.py):
    # this test is about hostile records, so intake is never paused.
    with dispatch_rig(DISPATCH_BATCH_SIZE="50", BACKPRESSURE_ENABLED="false") as r:
        yield r


@pytest.fixture()
def dispatcher(rig: DispatchRig):
    d = rig.dispatcher()
    d.subscribe()
    yield d
    d.close()


def _publish(rig: DispatchRig, records: list) -> None:
    producer = Producer({"bootstrap.servers": KAFKA, "acks": "all", "linger.ms": 5})
    errors: list[str] = []
    for (domain, value, _trace), ts, key in records:
        extra = {"timestamp": ts} if ts is not None else {}
        producer.produce(
            rig.topics[domain],
            value=value,
            key=key,
            on_delivery=lambda err, _m: errors.append(str(err)) if err else None,
            **extra,
        )
        producer.poll(0)
    assert producer.flush(60) == 0
    assert not errors, errors[:3]


def _check(rig: DispatchRig, dispatcher, records: list, totals: dict[str, int]) -> None:
    _publish(rig, records)
    read = dispatched = dead = dup = 0
    deadline = time.monotonic() + 60
    while read < len(records) and time.monotonic() < deadline:
        stats = dispatcher.poll_once(timeout=0.5)  # an exception here is the dispatcher exiting
        read += stats.read
        dispatched += stats.dispatched
        dead += stats.dead_lettered
        dup += stats.duplicates
    assert read == len(records)
    assert read == dispatched + dead + dup
    assert rig.lag() == 0
    missing = [
        trace
        for (_domain, _value, trace), _ts, _key in records
        if trace is not None and not rig.redis.exists(f"pipeline:dispatched:xact:{xact_event_id(trace)}")
    ]
    if missing:  # a valid xact event must be dispatched: say what happened to it
        letters = [
            (letter.headers.get("stage"), letter.headers.get("error")[:300])
            for letter in rig.dlq("xact")
            if any(t.encode() in letter.value for t in missing)
        ]
        raise AssertionError(f"valid events not dispatched: {missing}; their dead letters: {letters}")
    totals["dead"] += dead
    totals["records"] += read


def _run(rig: DispatchRig, dispatcher, examples: int) -> None:
    totals = {"dead": 0, "records": 0}

    @settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],  # no shrinking: each example costs Kafka round trips
    )
    @given(RECORDS)
    def prop(records: list) -> None:
        _check(rig, dispatcher, records, totals)

    prop()
    letters = len(rig.dlq("xact")) + len(rig.dlq("claimx"))
    assert letters == totals["dead"], (letters, totals)
    assert totals["dead"] > 0 and totals["records"] > totals["dead"]
    print(f"fuzz: {totals['records']} records, {totals['dead']} dead-lettered")


def test_hostile_records_never_stop_the_dispatcher(rig: DispatchRig, dispatcher) -> None:
    _run(rig, dispatcher, examples=int(os.environ.get("FUZZ_EXAMPLES", "25")))


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(os.environ.get("RUN_SLOW") != "1", reason="long fuzz run: set RUN_SLOW=1")
def test_hostile_records_never_stop_the_dispatcher_long(rig: DispatchRig, dispatcher) -> None:
    _run(rig, dispatcher, examples=400)
