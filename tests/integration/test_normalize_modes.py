"""Both processing guarantees of the normalizer end to end (no mode may publish nothing again).

Each runs on a fresh prefix: the whole raw input, one worker, output (read_committed) equal to the
offline expectation, and the DLQ holding every malformed payload.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.helpers import unique_name, wait_for
from tests.integration.test_normalize_kafka import (
    PARTS,
    Worker,
    counter_of,
    expected,
    output_topics,
    produce,
    raw_messages,
    read_all,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_each_guarantee_publishes_the_offline_expectation(
    kafka_bootstrap: str, tmp_path: Path, guarantee: str
) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    prefix = unique_name("nm") + "."
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for f in admin.create_topics([NewTopic(prefix + "binance.raw", PARTS, 1)]).values():
        f.result(15)
    msgs = raw_messages(prefix)
    exp, exp_dlq = expected(prefix, msgs)
    w = Worker(prefix, kafka_bootstrap, tmp_path / "worker.log", static=False, guarantee=guarantee)
    produce(kafka_bootstrap, prefix + "binance.raw", msgs)
    w.start()
    try:
        wait_for(
            lambda: counter_of(read_all(kafka_bootstrap, output_topics(prefix), idle=0.5)) == exp,
            timeout=60,
            interval=0.5,
            what=f"{guarantee} output equals the offline expectation",
        )
        dlq = read_all(kafka_bootstrap, [prefix + "binance.raw.dlq"], idle=0.5)
        assert sum(len(r) for r in dlq.values()) == exp_dlq
    finally:
        w.kill(signal.SIGTERM)
