"""A 3-node KRaft cluster from `tickwire infra` (processes, own ports and state dir; shared servers
untouched): topics.yaml applied with replication 3, transactions, and a broker SIGKILLed mid-stream while
the project's RawProducer and a read_committed consumer carry on; after it rejoins every record is there
exactly once.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import unique_name, wait_for
from tickwire import topic_admin
from tickwire.infra.cli import down, up
from tickwire.infra.config import InfraConfig, load_config
from tickwire.infra.kafka import Kafka
from tickwire.infra.process import pid_alive
from tickwire.topics import load_topics

pytestmark = pytest.mark.integration

BROKERS = 3


def _free_base() -> int:
    """First of six consecutive free ports (client/controller pairs), from 23092 on: below the kernel's
    ephemeral range (32768+), where a client connection's source port could take a node's port between
    this check and the JVM's bind (seen in a CI-like run: "bind 127.0.0.1:39096: Address already in use")."""
    for base in range(23092, 23992, 100):
        ports = range(base, base + 2 * BROKERS)
        free = True
        for p in ports:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the JVM binds
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    free = False
                    break
        if free:
            return base
    raise RuntimeError("no six consecutive free ports in 23092..23992")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfraConfig]:
    base = _free_base()
    cfg = load_config(
        {"TICKWIRE_LOCAL_DIR": str(tmp_path_factory.mktemp("cluster") / "local")},
        kafka_brokers=BROKERS,
        kafka_port=base,
        kafka_controller_port=base + 1,
        kafka_heap="384m",
    )
    shared = load_config({}).kafka_home  # reuse the resolved jars (no second Maven resolution)
    if (shared / "libs.stamp").exists():
        cfg.kafka_home.mkdir(parents=True)
        (cfg.kafka_home / "libs").symlink_to(shared / "libs")
        shutil.copy(shared / "libs.stamp", cfg.kafka_home / "libs.stamp")
    t0 = time.monotonic()
    try:
        started = up(cfg, ["kafka"])
        print(f"3-node cluster up in {time.monotonic() - t0:.1f}s: {started}")
        assert sorted(started) == ["kafka-1", "kafka-2", "kafka-3"]
        assert {a for a, _ in started.values()} == {"started"}
        yield cfg
    finally:
        t0 = time.monotonic()
        stopped = down(cfg, ["kafka"])
        print(f"cluster down in {time.monotonic() - t0:.1f}s: {stopped}")


def _admin(cfg: InfraConfig) -> Any:
    return topic_admin.make_admin(cfg.kafka_bootstrap)


def _topic_config(cfg: InfraConfig, topic: str) -> dict[str, str]:
    from confluent_kafka.admin import ConfigResource, ResourceType

    res = ConfigResource(ResourceType.TOPIC, topic)
    admin = _admin(cfg)  # kept alive until the future resolves
    entries = admin.describe_configs([res], request_timeout=15)[res].result(timeout=15)
    return {k: e.value for k, e in entries.items()}


def _isr_sizes(cfg: InfraConfig, topic: str) -> list[int]:
    admin = _admin(cfg)
    md = admin.list_topics(topic, timeout=10)
    return [len(p.isrs) for _, p in sorted(md.topics[topic].partitions.items())]


def _txn_producer(cfg: InfraConfig, txn_id: str) -> Any:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": cfg.kafka_bootstrap, "transactional.id": txn_id, "linger.ms": 5})
    p.init_transactions(30)
    return p


def _read_all(cfg: InfraConfig, topic: str, partitions: int, expect: int, timeout: float = 30) -> list[bytes]:
    """Every committed value of ``topic`` from the beginning (read_committed), waiting for ``expect``."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": cfg.kafka_bootstrap,
            "group.id": unique_name("read"),
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    idle_until = None
    try:
        while time.monotonic() < deadline:
            batch = c.consume(500, 0.5)
            for m in batch:
                if m.error() is None:
                    out.append(m.value())
            if len(out) >= expect:
                # keep reading briefly: a duplicate would show up now
                idle_until = idle_until or time.monotonic() + 1.0
                if time.monotonic() > idle_until:
                    break
    finally:
        c.close()
    return out


def test_transactions_replicated_and_read_committed(cluster: InfraConfig) -> None:
    topic = "test." + unique_name("txn")
    topic_admin.ensure_topics(cluster.kafka_bootstrap, {topic: 2}, replication=3)
    p = _txn_producer(cluster, unique_name("txn"))
    for batch, commit in (("a", True), ("b", False), ("c", True)):
        p.begin_transaction()
        for i in range(50):
            p.produce(topic, f"{batch}{i}".encode(), key=str(i).encode())
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    del p
    got = _read_all(cluster, topic, 2, expect=100)
    assert sorted(got) == sorted(f"{b}{i}".encode() for b in "ac" for i in range(50))
    md = _admin(cluster).list_topics("__transaction_state", timeout=10)
    parts = md.topics["__transaction_state"].partitions
    assert len(parts) == 3 and {len(x.replicas) for x in parts.values()} == {3}
    assert _topic_config(cluster, "__transaction_state")["min.insync.replicas"] == "2"


class _Collector(threading.Thread):
    """A read_committed group consumer collecting values until stopped."""

    def __init__(self, cfg: InfraConfig, topic: str) -> None:
        super().__init__(daemon=True, name="collector")
        from confluent_kafka import Consumer

        self.values: list[bytes] = []
        self.stop = threading.Event()
        self.errors: list[str] = []
        self._c = Consumer(
            {
                "bootstrap.servers": cfg.kafka_bootstrap,
                "group.id": unique_name("failover"),
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": True,
            }
        )
        self._c.subscribe([topic])

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                for m in self._c.consume(500, 0.2):
                    if m.error() is None:
                        self.values.append(m.value())
                    elif not m.error().retriable():
                        self.errors.append(m.error().str())
        finally:
            self._c.close()


def test_broker_sigkill_mid_stream_producer_and_consumer_carry_on_exactly_once(
    cluster: InfraConfig,
) -> None:
    from tickwire.ingest.producer import RawProducer

    topic = "test." + unique_name("failover")
    parts, rate = 3, 1000
    topic_admin.ensure_topics(cluster.kafka_bootstrap, {topic: parts}, replication=3)
    admin = _admin(cluster)
    leader = admin.list_topics(topic, timeout=10).topics[topic].partitions[0].leader
    victim = Kafka(cluster, node=leader)  # leads partition 0: its leadership must move
    pid = victim.status().pid
    assert pid is not None
    collector = _Collector(cluster, topic)
    collector.start()
    producer = RawProducer(cluster.kafka_bootstrap, client_id=unique_name("failover"), linger_ms=5)
    marks: dict[str, tuple[int, int]] = {}  # phase -> (records produced, records consumed)
    restarter = threading.Thread(target=victim.up, name="restart")
    # Phases, producing at `rate` records/s throughout: 2 s with three brokers; SIGKILL; two brokers
    # until the consumer has read 1000 records produced after the kill (the victim is fenced after the
    # 6 s broker session timeout and its leaderships move); restart; 2 s after the victim is back.
    t0 = time.monotonic()
    t_back = 0.0
    i = 0
    while True:
        now = time.monotonic() - t0
        consumed = len(collector.values)
        if "killed" not in marks and now >= 2:
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not pid_alive(pid), timeout=10, what="victim dead")
            marks["killed"] = (i, len(collector.values))
        elif "killed" in marks and "restart" not in marks and consumed > marks["killed"][0] + 999:
            marks["restart"] = (i, len(collector.values))
            restarter.start()
        elif "restart" in marks and not restarter.is_alive():
            if "back" not in marks:
                marks["back"], t_back = (i, len(collector.values)), now
            if now >= t_back + 2:
                break
        producer.produce(topic, f"r{i:06d}".encode(), f"k{i % 17}".encode(), [("tw-seq", str(i).encode())])
        i += 1
        ahead = i / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
        assert now < 150, f"stuck in a phase: {marks}"
    n = i
    assert producer.flush(60) == 0
    del producer  # no reconnect noise once the cluster is down
    produced_s = time.monotonic() - t0
    restarter.join(5)
    assert victim.status().state == "running"
    wait_for(lambda: _isr_sizes(cluster, topic) == [3] * parts, timeout=60, what="victim back in every ISR")
    expected = [f"r{i:06d}".encode() for i in range(n)]
    wait_for(lambda: len(collector.values) >= n, timeout=60, what=f"{n} records consumed")
    time.sleep(1.0)  # a duplicate delivered late would show up now
    collector.stop.set()
    collector.join(15)
    counts = Counter(collector.values)
    assert set(counts) == set(expected), f"missing {len(set(expected) - set(counts))}"
    assert max(counts.values()) == 1, f"duplicates: {[v for v, c in counts.items() if c > 1][:5]}"
    assert not collector.errors
    # Producer and consumer kept going while the victim was down (the restart waited for that).
    (p_kill, _), (p_restart, c_restart) = marks["killed"], marks["restart"]
    assert c_restart > p_kill + 1000 and p_restart > p_kill + 1000, marks
    # Read back from the beginning against the whole cluster: exactly the produced records, once each.
    again = _read_all(cluster, topic, parts, expect=n, timeout=60)
    assert sorted(again) == expected
    print(f"failover: {n} records in {produced_s:.1f}s, marks (produced, consumed) {marks}")


def test_cluster_config_and_topics_apply_with_replication_3(cluster: InfraConfig) -> None:
    md = _admin(cluster).list_topics(timeout=10)
    assert sorted(md.brokers) == [1, 2, 3]
    assert cluster.kafka_bootstrap.count(",") == 2
    prefix = unique_name("rf3") + "."
    argv = ["--bootstrap", cluster.kafka_bootstrap, "--replication", "3", "--prefix", prefix]
    assert topic_admin.main(["apply", *argv]) == 0
    assert topic_admin.main(["check", *argv]) == 0
    specs = load_topics(topic_admin.DEFAULT_FILE)
    md = _admin(cluster).list_topics(timeout=10)
    for s in specs:
        t = md.topics[prefix + s.name]
        assert len(t.partitions) == s.partitions, s.name
        assert {len(p.replicas) for p in t.partitions.values()} == {3}, s.name
    cfg = _topic_config(cluster, prefix + specs[0].name)
    assert cfg["min.insync.replicas"] == "2"
    assert cfg["unclean.leader.election.enable"] == "false"
    admin = _admin(cluster)
    for fut in admin.delete_topics([prefix + s.name for s in specs], operation_timeout=30).values():
        fut.result(timeout=30)
