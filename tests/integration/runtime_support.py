"""Shared pieces of the runtime integration tests: topics, input, the toy worker process, output reads."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.helpers import unique_name, wait_for

TOY = [sys.executable, "-m", "tests.integration.runtime_toy"]


def create_topics(bootstrap: str, topics: dict[str, int]) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(t, n, 1) for t, n in topics.items()]).values():
        f.result(15)
    deadline = time.monotonic() + 15
    while not all(t in admin.list_topics(timeout=10).topics for t in topics):
        assert time.monotonic() < deadline, "topics not visible"
        time.sleep(0.05)


def produce_input(bootstrap: str, topic: str, n: int, keys: int, start: int = 0) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    for i in range(start, start + n):
        p.produce(topic, str(i).encode(), b"k%d" % (i % keys))
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0


def expected(n: int, keys: int) -> dict[bytes, list[bytes]]:
    counts: collections.Counter[bytes] = collections.Counter()
    out: dict[bytes, list[bytes]] = collections.defaultdict(list)
    for i in range(n):
        k = b"k%d" % (i % keys)
        counts[k] += 1
        out[k].append(b"%s:%d:%d" % (k, i, counts[k]))
    return dict(out)


def read_committed(bootstrap: str, topic: str) -> dict[bytes, list[bytes]]:
    """Everything committed on ``topic`` now (read to the end offsets taken at the start), per key."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("rd"),
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    out: dict[bytes, list[bytes]] = collections.defaultdict(list)
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p, 0) for p in md.partitions]
        ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
        todo = {p for p, hi in ends.items() if hi > 0}
        c.assign(parts)
        deadline = time.monotonic() + 30
        while todo and time.monotonic() < deadline:
            for m in c.consume(1000, 0.2):
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF and m.offset() >= ends[m.partition()]:
                        todo.discard(m.partition())
                    continue
                out[m.key()].append(m.value())
                if m.offset() + 1 >= ends[m.partition()]:
                    todo.discard(m.partition())
            if todo:
                for tp in c.position([TopicPartition(topic, p) for p in todo]):
                    if tp.offset >= ends[tp.partition]:
                        todo.discard(tp.partition)
        assert not todo, f"could not read {topic} to its end: {todo}"
    finally:
        c.close()
    return dict(out)


def group_progress(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    """Sum of the group's committed offsets on ``topic`` (0 for none): how far the workers got."""
    from confluent_kafka import Consumer, TopicPartition

    # read_uncommitted: a read_committed consumer asks for stable offsets and would wait on open txns.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_uncommitted"})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return sum(max(0, tp.offset) for tp in tps)
    finally:
        c.close()


def count_committed(bootstrap: str, topic: str) -> int:
    return sum(len(v) for v in read_committed(bootstrap, topic).values())


class Toy:
    """One toy worker process (restartable)."""

    def __init__(self, bootstrap: str, inp: str, out: str, group: str, log: Path, **opts: Any) -> None:
        self.args = ["--bootstrap", bootstrap, "--input", inp, "--output", out, "--group", group]
        for k, v in opts.items():
            self.args += [f"--{k.replace('_', '-')}", str(v)]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, **extra: Any) -> Toy:
        args = list(self.args)
        for k, v in extra.items():
            args += [f"--{k.replace('_', '-')}", str(v)]
        with self.log.open("ab") as f:
            self.proc = subprocess.Popen(
                [*TOY, *args], stdout=f, stderr=subprocess.STDOUT, env=dict(os.environ)
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=60)
        self.proc = None
        return rc


def check_output(bootstrap: str, group: str, inp: str, out: str, n: int, keys: int, parts: int) -> None:
    """Wait until the group committed all ``n`` inputs and their outputs, then compare exactly."""
    wait_for(lambda: group_progress(bootstrap, group, inp, parts) >= n, timeout=60, what="input committed")
    wait_for(lambda: count_committed(bootstrap, out) >= n, timeout=20, what="output committed")
    assert read_committed(bootstrap, out) == expected(n, keys)
