"""`tickwire.topic_read.read_to_end` against the real broker: a read ends at the watermarks taken first,
also when the last offsets hold transaction markers (no idle wait), and its tail and missing-topic cases."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, Producer

from tests.helpers import unique_name
from tests.integration.runtime_support import create_topics
from tickwire.topic_read import read_to_end

pytestmark = pytest.mark.integration


def _consumer(bootstrap: str, isolation: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )


def test_reads_committed_records_to_the_end_past_transaction_markers(kafka_bootstrap: str) -> None:
    topic = unique_name("tread")
    create_topics(kafka_bootstrap, {topic: 2})
    p = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": unique_name("tread-tx")})
    p.init_transactions(30)
    for n, commit in ((0, True), (1, False), (2, True)):  # committed, aborted, committed
        p.begin_transaction()
        for i in range(5):
            p.produce(topic, f"{n}-{i}".encode(), partition=i % 2)
        (p.commit_transaction if commit else p.abort_transaction)(30)
    # Each partition now ends with a commit marker: its high watermark is past the last record.
    # strict: a reader that waited for a record at the marker offsets would raise TimeoutError here.
    committed = _consumer(kafka_bootstrap, "read_committed")
    try:
        got = read_to_end(committed, topic, timeout=20, strict=True)
    finally:
        committed.close()
    assert got is not None
    assert sorted(m.value() for m in got) == sorted(f"{n}-{i}".encode() for n in (0, 2) for i in range(5))

    everything = _consumer(kafka_bootstrap, "read_uncommitted")
    try:
        got = read_to_end(everything, topic, tail=3, timeout=20, strict=True)
    finally:
        everything.close()
    assert got is not None
    # The last three offsets per partition: two data records and the final commit marker.
    by_part = {part: [m.value() for m in got if m.partition() == part] for part in (0, 1)}
    assert by_part == {0: [b"2-2", b"2-4"], 1: [b"2-1", b"2-3"]}


def test_missing_topic_is_none(kafka_bootstrap: str) -> None:
    c = _consumer(kafka_bootstrap, "read_uncommitted")
    try:
        assert read_to_end(c, unique_name("tread-none"), timeout=5) is None
    finally:
        c.close()
