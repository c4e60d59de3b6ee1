"""Kafka smoke through the real broker: consumer groups with committed offsets, transactions.

Also run by `make test-kafka-alt` against the other supported Kafka version (KAFKA_BOOTSTRAP_SERVERS).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.helpers import unique_name, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(kafka_bootstrap: str, unique_topic: Callable[[str], str]) -> Iterator[str]:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    name = unique_topic("infra")
    for fut in admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)]).values():
        fut.result(timeout=30)
    yield name
    for fut in admin.delete_topics([name]).values():
        fut.result(timeout=30)


def _consumer(bootstrap: str, group: str, **extra: str) -> Consumer:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        **extra,
    }
    return Consumer(conf)


def _read(consumer: Consumer, until: Callable[[list[bytes]], bool], timeout: float = 30.0) -> list[bytes]:
    got: list[bytes] = []

    def step() -> bool:
        msg = consumer.poll(0.2)
        if msg is not None:
            assert msg.error() is None, msg.error()
            got.append(msg.value())
        return until(got)

    wait_for(step, timeout=timeout, interval=0, what="messages")
    return got


def test_consumer_group_resumes_after_committed_offsets(kafka_bootstrap: str, topic: str) -> None:
    values = [f"v{i:03d}".encode() for i in range(30)]
    p = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    for i, v in enumerate(values):
        p.produce(topic, v, key=f"k{i % 7}".encode())
    assert p.flush(30) == 0

    group = unique_name("grp")
    c1 = _consumer(kafka_bootstrap, group)
    c1.subscribe([topic])
    first = _read(c1, lambda got: len(got) >= 20)
    # Commits the positions of the messages returned so far (position = last returned offset + 1).
    c1.commit(asynchronous=False)
    committed = c1.committed([TopicPartition(topic, i) for i in range(3)], timeout=10)
    c1.close()
    assert sum(tp.offset for tp in committed if tp.offset >= 0) == len(first)

    c2 = _consumer(kafka_bootstrap, group)
    c2.subscribe([topic])
    rest = _read(c2, lambda got: len(first) + len(got) >= len(values))
    c2.close()
    assert not set(first) & set(rest), "the second consumer re-read committed messages"
    assert sorted(first + rest) == values


def test_transactions_visible_only_when_committed(kafka_bootstrap: str, topic: str) -> None:
    p = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": unique_name("tx")})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, f"committed-{i}".encode(), key=b"k")
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, f"aborted-{i}".encode(), key=b"k")
    p.flush(30)
    p.abort_transaction(30)
    p.begin_transaction()
    p.produce(topic, b"end", key=b"k")
    p.commit_transaction(30)

    rc = _consumer(kafka_bootstrap, unique_name("rc"), **{"isolation.level": "read_committed"})
    rc.subscribe([topic])
    seen = _read(rc, lambda got: b"end" in got)
    rc.close()
    assert seen == [b"committed-0", b"committed-1", b"committed-2", b"end"]

    # The aborted records are in the log: a read_uncommitted consumer sees them.
    ru = _consumer(kafka_bootstrap, unique_name("ru"), **{"isolation.level": "read_uncommitted"})
    ru.subscribe([topic])
    raw = _read(ru, lambda got: b"end" in got)
    ru.close()
    assert [v for v in raw if v.startswith(b"aborted")] == [b"aborted-0", b"aborted-1", b"aborted-2"]
