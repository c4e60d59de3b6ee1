"""Normalizer scale-out, exactly-once intact: a SIGKILLed worker's partitions move to the survivor; a
second worker joins and leaves ten times mid-stream.

The raw input (recorded Binance session + synthetic aggTrades + malformed payloads, see
test_normalize_kafka) is fed in small paced chunks while workers die or come and go; at the end the
canonical output (read_committed) must equal the offline expectation as a multiset, bytes included.
"""

from __future__ import annotations

import re
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.helpers import unique_name, wait_for
from tests.integration.test_normalize_kafka import (
    PARTS,
    Worker,
    committed,
    counter_of,
    expected,
    output_topics,
    produce,
    raw_messages,
    read_all,
)

pytestmark = pytest.mark.integration


class Feeder(threading.Thread):
    """Produces the raw input in chunks, one every ``pause`` seconds, until ``rest`` is set: then the
    remainder at once. Same records in the same order whatever the timing."""

    def __init__(self, bootstrap: str, topic: str, msgs: list[Any], chunk: int = 40, pause: float = 0.1):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.msgs, self.chunk, self.pause = bootstrap, topic, msgs, chunk, pause
        self.rest = threading.Event()
        self.sent = 0

    def run(self) -> None:
        while self.sent < len(self.msgs):
            n = len(self.msgs) - self.sent if self.rest.is_set() else self.chunk
            produce(self.bootstrap, self.topic, self.msgs[self.sent : self.sent + n])
            self.sent += n
            self.rest.wait(self.pause)


def _assigned(log: Path) -> int:
    return len(re.findall(r"partitions assigned", log.read_text())) if log.exists() else 0


def _partitions(log: Path) -> set[int]:
    found = re.findall(r"partitions assigned .*partitions=(\S+)", log.read_text())
    return {int(p) for line in found for p in re.findall(r"\[(\d+)\]", line)}


def _setup(bootstrap: str) -> tuple[str, list[Any], Any, int]:
    prefix = unique_name("ng") + "."
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(prefix + "binance.raw", PARTS, 1)]).values():
        f.result(15)
    # Created is not yet visible everywhere (a freshly started broker): workers started too early exit.
    wait_for(
        lambda: (
            len(
                admin.list_topics(prefix + "binance.raw", timeout=5).topics[prefix + "binance.raw"].partitions
            )
            == PARTS
        ),
        timeout=15,
        what="raw topic in the metadata",
    )
    msgs = raw_messages(prefix)
    exp, _ = expected(prefix, msgs)
    return prefix, msgs, exp, len(msgs)


def _check(bootstrap: str, prefix: str, exp: Any) -> None:
    try:
        wait_for(
            lambda: counter_of(read_all(bootstrap, output_topics(prefix), idle=0.5)) == exp,
            timeout=60,
            interval=1.0,
            what="output equals the offline expectation",
        )
    except AssertionError:
        got = counter_of(read_all(bootstrap, output_topics(prefix)))
        raise AssertionError(
            f"duplicates={sum((got - exp).values())} missing={sum((exp - got).values())}"
        ) from None


def test_killed_workers_partitions_move_to_the_survivor(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix, msgs, exp, n = _setup(kafka_bootstrap)
    raw, group = prefix + "binance.raw", prefix + "tickwire-normalizer"
    a = Worker(prefix, kafka_bootstrap, tmp_path / "a.log", instance="a", static=False)
    b = Worker(prefix, kafka_bootstrap, tmp_path / "b.log", instance="b", static=False)
    feeder = Feeder(kafka_bootstrap, raw, msgs, chunk=30, pause=0.1)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    try:
        a.start()
        b.start()
        wait_for(lambda: _assigned(a.log) and _assigned(b.log), timeout=30, what="both assigned")
        feeder.start()
        wait_for(lambda: committed(admin, group, raw) > n // 5, timeout=30, what="progress")
        a.kill(signal.SIGKILL)
        assert feeder.sent < n, "not mid-stream"
        feeder.rest.set()
        feeder.join(60)
        _check(kafka_bootstrap, prefix, exp)
        assert _partitions(b.log) == set(range(PARTS))  # the survivor ended up with every partition
    finally:
        feeder.rest.set()
        a.kill(signal.SIGTERM)
        b.kill(signal.SIGTERM)


def test_second_worker_joins_and_leaves_ten_times(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix, msgs, exp, n = _setup(kafka_bootstrap)
    raw, group = prefix + "binance.raw", prefix + "tickwire-normalizer"
    a = Worker(prefix, kafka_bootstrap, tmp_path / "a.log", instance="a", static=False)
    feeder = Feeder(kafka_bootstrap, raw, msgs, chunk=20, pause=0.25)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    try:
        a.start()
        wait_for(lambda: _assigned(a.log), timeout=30, what="a assigned")
        feeder.start()
        for i in range(10):
            b = Worker(prefix, kafka_bootstrap, tmp_path / f"b{i}.log", instance="b", static=False)
            b.start()
            wait_for(lambda b=b: _assigned(b.log), timeout=30, what=f"join {i}")  # type: ignore[misc]
            before = committed(admin, group, raw)
            wait_for(lambda x=before: committed(admin, group, raw) > x, timeout=30, what=f"progress {i}")
            b.kill(signal.SIGTERM)  # leaves: commits on revoke, partitions go back to a
            assert feeder.sent < n, f"input ran out at round {i}: not mid-stream"
        feeder.rest.set()
        feeder.join(60)
        _check(kafka_bootstrap, prefix, exp)
    finally:
        feeder.rest.set()
        a.kill(signal.SIGTERM)
