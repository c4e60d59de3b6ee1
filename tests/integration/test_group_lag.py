"""Consumer-group lag as `tickwire run`'s live view (`tickwire.monitor.group_lag`) and `deploy` (its wait
for the stack to drain) compute it, both through `tickwire.monitor.committed_lag`, on a real broker."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.helpers import unique_name
from tests.integration.runtime_support import create_topics
from tickwire.infra.deploy import _lag
from tickwire.monitor import group_lag

pytestmark = pytest.mark.integration


def test_lag_is_end_minus_committed_and_whole_partition_without_commit(kafka_bootstrap: str) -> None:
    topic, group = unique_name("lag"), unique_name("lag-g")
    create_topics(kafka_bootstrap, {topic: 2})
    p = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(5):
        p.produce(topic, b"%d" % i, partition=0)
    for i in range(3):
        p.produce(topic, b"%d" % i, partition=1)
    assert p.flush(30) == 0

    assert group_lag(kafka_bootstrap, group, [topic]) == 8  # nothing committed: every record is lag
    c = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)
        committed = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
    finally:
        c.close()
    assert committed[0].offset == 2 and committed[1].offset < 0
    assert group_lag(kafka_bootstrap, group, [topic]) == (5 - 2) + 3
    assert _lag(kafka_bootstrap, group, committed) == (5 - 2) + 3
    assert group_lag(kafka_bootstrap, group, [unique_name("missing")]) is None
