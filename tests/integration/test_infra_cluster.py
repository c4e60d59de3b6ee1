"""A 3-node KRaft cluster from `tickwire infra` (processes, own ports and state dir; shared servers
untouched): topics.yaml applied with replication 3, transactions, and a broker SIGKILLed mid-stream while
the whole pipeline runs as processes (simulator, producer, exactly-once normalizer, both bridges); after it
rejoins, raw and canonical topics hold every record exactly once, counted against the simulator's sent log.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import unique_name, wait_for
from tests.integration.cluster_bridges import Subscriber, jetstream_count, jetstream_messages, redis_expected
from tests.integration.cluster_pipeline import (
    CANONICAL,
    check_raw_against_sent,
    coordinated_by_one,
    coordinator,
    explain,
    isr_full,
    leader_of,
    live,
    load_sent_log,
    offline,
    read_rows,
    settled,
    sim_control,
    sim_frames,
    start_pipeline,
    wait_alive,
    ws_frames_in,
)
from tests.integration.test_bridge_helpers import Proc, procs  # noqa: F401
from tickwire import topic_admin
from tickwire.bridges import shapes
from tickwire.contract.codec import Codec
from tickwire.contract.records import Trade
from tickwire.infra.cli import down, up
from tickwire.infra.config import InfraConfig, load_config
from tickwire.infra.kafka import Kafka
from tickwire.infra.process import pid_alive
from tickwire.topics import load_topics

pytestmark = [pytest.mark.integration, pytest.mark.serial]

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


@pytest.mark.timeout(420)
def test_broker_sigkill_mid_stream_pipeline_exactly_once_against_sent_log(
    cluster: InfraConfig,
    tmp_path: Path,
    procs: list[Proc],  # noqa: F811
    redis_url: str,
    nats_url: str,
) -> None:
    """Simulator -> `tickwire ingest binance` -> binance.raw -> `tickwire normalize` (exactly-once) ->
    canonical topics -> both bridges, all processes, on the 3-broker cluster (topics.yaml applied with
    replication 3, min.insync.replicas 2). The broker coordinating both the normalizer's transactions
    and its consumer group is SIGKILLed mid-stream; every stage must carry on on two brokers (trades
    executed after the kill reach Redis and are committed before the victim is back); it restarts and
    rejoins every ISR. Then: the raw topic holds exactly what the simulator sent (its sent log), once
    each; the canonical topics hold exactly what the normalizer's offline path makes of those raw
    records, once each (read_committed); Redis pub/sub and JetStream got every committed record once."""
    t_test = time.monotonic()
    boot = cluster.kafka_bootstrap
    # The internal topics exist first (not yet when run alone): an init_transactions and a group lookup.
    _txn_producer(cluster, unique_name("warm"))
    # The group lookup's FindCoordinator creates __consumer_offsets; its answer waits for that topic's
    # load, so only the topic is waited for (the client kept alive meanwhile).
    warm = _admin(cluster)
    warm.describe_consumer_groups([unique_name("warm")])
    prefix = wait_for(lambda: coordinated_by_one(boot), 30, what="a prefix with one coordinator")
    del warm
    pl = start_pipeline(boot, tmp_path, procs, redis_url, nats_url, prefix)
    sub = Subscriber(redis_url, f"{pl.key_prefix}market_*")
    sub.start()
    codec = Codec(None)
    victim: Kafka | None = None
    try:
        wait_alive(lambda: len(sub.seen) >= 50, pl, 120, what="trades through every stage to Redis")
        t_flow = time.monotonic()

        # --- SIGKILL the broker coordinating both the normalizer's transactions and its group (the
        # prefix was chosen so): the hardest one to lose. Whatever raw partition it leads moves too.
        victim = Kafka(cluster, node=coordinator(boot, "__transaction_state", pl.normalizer_txn_id))
        led = [p for p in range(3) if leader_of(boot, pl.raw_topic, p) == victim.node]
        per_part = Counter(r.partition for r in read_rows(boot, [pl.raw_topic], "read_uncommitted", idle=0.5))
        pid = victim.status().pid
        assert pid is not None
        kill_wall, t_kill = time.time(), time.monotonic()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(pid), timeout=10, what="victim dead")
        frames_at_kill = sim_frames(pl.http_url)

        # --- on two brokers, trades executed after the kill go through every stage and are committed
        wait_alive(lambda: len(sub.trades_after(kill_wall)) >= 200, pl, 120, what="flow on 2 brokers")
        first_after = min(at for at, _ in sub.trades_after(kill_wall)) - kill_wall

        def committed_since_kill() -> int:
            rows = read_rows(boot, [pl.prefix + "crypto_trades_realtime"], idle=1.0)
            return sum(1 for r in rows if codec.decode(r.value).ts_event > kill_wall * 1e9)

        # The bridges read uncommitted; commits resume once the transaction coordinator has moved too.
        wait_alive(lambda: committed_since_kill() >= 100, pl, 90, what="commits on 2 brokers")
        committed_after = time.monotonic() - t_kill
        assert not pid_alive(pid)
        frames_down = sim_frames(pl.http_url) - frames_at_kill

        # --- restart; back in every ISR; then stream on well past the failover
        t_restart = time.monotonic()
        assert victim.up()[0] == "started"
        wait_alive(lambda: isr_full(boot, pl.prefix, BROKERS), pl, 120, what="victim in every ISR")
        t_back, back_wall = time.monotonic(), time.time()
        wait_alive(lambda: len(sub.trades_after(back_wall)) >= 100, pl, 60, what="flow after rejoin")

        # --- quiesce: mute the simulator (frames due are dropped: neither sent nor logged); once the
        # producer has published every frame sent, stop it (SIGTERM), then the simulator (writes its log)
        assert sim_control(pl.http_url, "/control/fault?fault=mute&seconds=600&pong=1")["ok"]
        n_sent = settled(lambda: sim_frames(pl.http_url))
        wait_for(lambda: ws_frames_in(boot, pl.raw_topic) == n_sent, 60, interval=0.5, what="frames in raw")
        pl.stages.remove(pl.ingest)  # stopped on purpose from here on
        for p in (pl.ingest, pl.sim):
            p.stop()
            assert p.p is not None and p.p.returncode == 0, p.argv

        # --- (a) raw == the simulator's sent log, once each
        sent = load_sent_log(pl.sent_log)
        assert len(sent.ws[1]) == n_sent
        raw = read_rows(boot, [pl.raw_topic])
        n_rest = check_raw_against_sent(raw, sent, partitions=3)
        gaps = [codec.decode(r.value) for r in read_rows(boot, [pl.prefix + "tickwire.gaps"])]
        assert [g for g in gaps if g.detected_by == "producer"] == [], "the producer saw a gap"

        # --- (b) canonical (read_committed) == the offline path over exactly those raw records, once each
        want = offline(raw, pl.prefix)
        assert sum(n for (t, _, _), n in want.items() if t == "crypto_trades_realtime") > 500, want.keys()
        out_topics = [pl.prefix + t for t in (*CANONICAL, "tickwire.gaps")]
        try:
            wait_alive(lambda: live(read_rows(boot, out_topics), pl.prefix) == want, pl, 90, what="canonical")
        except AssertionError:
            raise AssertionError(explain(want, live(read_rows(boot, out_topics), pl.prefix))) from None
        committed = [codec.decode(r.value) for r in read_rows(boot, [pl.prefix + t for t in CANONICAL])]
        in_log = read_rows(boot, [pl.prefix + t for t in CANONICAL], "read_uncommitted")

        # --- (c) bridges: Redis pub/sub and JetStream got every committed record once
        expected_redis = redis_expected(committed, pl.key_prefix)
        wait_for(lambda: len(sub.seen) >= sum(expected_redis.values()), 60, what="every trade in Redis")
        expected_js = {shapes.msg_id(r): shapes.nats_payload(r) for r in committed}
        assert len(expected_js) == len(committed)
        wait_for(lambda: jetstream_count(nats_url, pl.js_stream) >= len(expected_js), 60, what="jetstream")
        time.sleep(1.0)  # a late duplicate would arrive now
        pl.watch("the end")
    finally:
        sub.halt = True
        if victim is not None and victim.status().pid is None:
            victim.up()  # the module's other tests need all three brokers, whatever failed here
    sub.join(5)
    seen_redis = Counter((ch, data) for _, ch, data in sub.seen)
    # Counted, not de-duplicated: two trades in one millisecond at one price and size look alike here.
    extra, missing = seen_redis - expected_redis, expected_redis - seen_redis
    assert not extra and not missing, (
        f"Redis pub/sub vs committed trades and 1m bars: {sum(extra.values())} extra (duplicates or "
        f"phantoms) {list(extra)[:3]}, {sum(missing.values())} missing {list(missing)[:3]}"
    )
    got_js = jetstream_messages(nats_url, pl.js_stream, delete=True)
    assert Counter(mid for mid, _ in got_js) == Counter(expected_js.keys()), "JetStream ids differ"
    assert dict(got_js) == expected_js, "JetStream payloads differ"
    trades = sum(1 for r in committed if isinstance(r, Trade))
    print(
        f"failover pipeline: {n_sent} ws frames ({frames_down} while a broker was down), {n_rest} raw REST "
        f"records, {sum(want.values())} canonical ({trades} trades; {len(in_log) - len(committed)} aborted "
        f"in the log); victim {victim.node} (transaction and group coordinator) led raw partitions {led} of "
        f"{dict(per_part)}; first post-kill "
        f"trade in Redis {first_after:.1f}s after the kill, 100 committed {committed_after:.1f}s after it; "
        f"down {t_restart - t_kill:.1f}s, restart to every ISR {t_back - t_restart:.1f}s; startup "
        f"{t_flow - t_test:.1f}s, test {time.monotonic() - t_test:.1f}s"
    )


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
