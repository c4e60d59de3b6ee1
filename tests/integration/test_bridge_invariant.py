"""The legacy-consumer invariant of the live path, end to end with real processes.

A real normalizer (``tickwire normalize``, exactly-once) turns a paced Binance aggTrade stream into
canonical trades and aggregated bars and is SIGKILLed 20 times mid-stream (while records of its open
transaction are in the log). Both bridges read the canonical topics uncommitted and forward them. A Redis
pub/sub subscriber records every message; at the end the JetStream stream is read whole. Then, against
the canonical topics read ``read_committed``:

- no duplicate: every Redis message and every JetStream message id was seen once;
- no phantom: everything seen is a committed record (same identity, same payload);
- nothing lost: every committed record was seen.

The raw records of one symbol alternate between two raw partitions (as symbol-keyed and stream-keyed
frames of one producer session do), so a symbol's seq is not monotonic in its canonical partition: a
high-water mark by seq would drop records here, an identity window must not.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.helpers import unique_name, wait_for
from tests.integration.cluster_bridges import jetstream_count, jetstream_messages
from tests.integration.test_bridge_helpers import Proc, bridge_proc, create_topics, procs
from tickwire.bridges import shapes
from tickwire.contract.codec import Codec
from tickwire.contract.envelope import Envelope
from tickwire.contract.records import Bar, Trade

__all__ = ["procs"]

pytestmark = pytest.mark.integration

# The issue asks for x20. Each cycle waits for a restarted normalizer's first output (its start-up time).
KILLS = int(os.environ.get("TICKWIRE_TEST_NORMALIZER_KILLS", "20"))
SESSION = 1_700_000_000_000_000_000
SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBBTC")
CANONICAL = ("crypto_trades_realtime", "crypto_bars_staging")


def frame(i: int) -> tuple[bytes, bytes, int]:
    """(symbol, payload, ts_recv ns) of aggTrade i: event times strictly increase per symbol."""
    sym = SYMBOLS[i % len(SYMBOLS)]
    t_ms = 1_634_000_000_000 + i * 97
    data = {
        "e": "aggTrade", "E": t_ms, "s": sym, "a": i, "p": f"{100 + i % 89}.{i % 997:03d}",
        "q": f"{i % 50 + 1}.{i % 7}", "f": i, "l": i, "T": t_ms, "m": i % 3 == 0, "M": True,
    }  # fmt: skip
    return (
        sym.encode(),
        json.dumps({"stream": f"{sym.lower()}@aggTrade", "data": data}).encode(),
        t_ms * 10**6,
    )


class Normalizer:
    def __init__(self, prefix: str, bootstrap: str, log: Path) -> None:
        self.prefix, self.bootstrap, self.log = prefix, bootstrap, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        # Static membership (one slot, "0"): the restarted process takes the partitions back at once
        # instead of waiting out the killed member's session, and its init_transactions (same
        # transactional id) aborts the killed process's open transaction, as in production restarts.
        env = {
            **os.environ, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "NORMALIZER_BAR_LATENESS_MS": "0",
            "NORMALIZER_STATIC_MEMBERSHIP": "true", "NORMALIZER_SESSION_TIMEOUT_MS": "6000",
        }  # fmt: skip
        argv = [sys.executable, "-m", "tickwire.cli", "normalize", "--topic-prefix", self.prefix]
        argv += ["--vendors", "binance", "--create-topics", "--metrics-port", "0", "--instance-id", "0"]
        with self.log.open("ab") as f:
            self.proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env)
        self.starts += 1

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)
        self.proc = None


class RawFeed(threading.Thread):
    """Produces raw frames at ``rate``/s until halted, alternating raw partitions (one producer session)."""

    def __init__(self, bootstrap: str, topic: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.rate = bootstrap, topic, rate
        self.sent = 0
        self.halt = False

    def run(self) -> None:
        p = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True, "linger.ms": 1})
        t0 = time.monotonic()
        i = 0
        while not self.halt:
            key, payload, ts = frame(i)
            env = Envelope("binance", "ws", SESSION, i + 1, ts, "json", "test")
            p.produce(self.topic, payload, key, partition=(i // 3) % 2, headers=env.to_headers())
            self.sent = i = i + 1
            lag = t0 + i / self.rate - time.monotonic()
            if lag > 0:
                p.poll(0)
                time.sleep(lag)
        assert p.flush(30) == 0


class Subscriber(threading.Thread):
    """A legacy Redis consumer: every pub/sub message on the bridge's market_* channels, in order."""

    def __init__(self, url: str, pattern: str) -> None:
        super().__init__(daemon=True)
        client: Any = redis.Redis.from_url(url)
        self.ps = client.pubsub()
        self.ps.psubscribe(pattern)
        self.seen: list[tuple[str, bytes]] = []
        self.halt = False

    def run(self) -> None:
        while not self.halt:
            m = self.ps.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if m is not None and m["type"] == "pmessage":
                self.seen.append((m["channel"].decode(), m["data"]))
        self.ps.close()


def flowing(sub: Subscriber, target: int) -> Callable[[], bool]:
    return lambda: len(sub.seen) > target


def committed_records(bootstrap: str, topics: list[str], isolation: str) -> list[Any]:
    codec = Codec()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_name("inv"), "enable.auto.commit": False,
                  "isolation.level": isolation, "auto.offset.reset": "earliest"})  # fmt: skip
    try:
        md = c.list_topics(timeout=10).topics
        c.assign([TopicPartition(t, p, 0) for t in topics if t in md for p in md[t].partitions])
        out, last = [], time.monotonic()
        while time.monotonic() - last < 2.0:
            for m in c.consume(1000, timeout=0.2):
                if m.error() is None:
                    out.append(codec.decode(m.value()))
                    last = time.monotonic()
        return out
    finally:
        c.close()


def test_no_duplicate_no_phantom_through_20_normalizer_kills(
    kafka_bootstrap: str, redis_url: str, nats_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    prefix = unique_name("inv") + "."
    kp, stream = unique_name("k") + ":", unique_name("INV").replace("-", "_")
    create_topics(kafka_bootstrap, [prefix + "binance.raw"], partitions=2)
    create_topics(kafka_bootstrap, [prefix + t for t in CANONICAL], partitions=2)
    sub = Subscriber(redis_url, f"{kp}market_*")
    sub.start()
    common = ["--bootstrap", kafka_bootstrap, "--topic-prefix", prefix, "--topics", ",".join(CANONICAL)]
    procs.append(
        bridge_proc(
            "redis",
            [*common, "--redis-url", redis_url, "--key-prefix", kp, "--no-control-plane"],
            tmp_path / "redis.log",
        ).start()
    )
    subj = f"{stream}."
    nats_args = [*common, "--nats-url", nats_url, "--stream", stream, "--subject-prefix", subj]
    procs.append(bridge_proc("nats", nats_args, tmp_path / "nats.log").start())
    norm = Normalizer(prefix, kafka_bootstrap, tmp_path / "normalizer.log")
    feed = RawFeed(kafka_bootstrap, prefix + "binance.raw", rate=300)
    try:
        norm.start()
        feed.start()
        rng = random.Random(7)
        for _ in range(KILLS):
            # Records of this incarnation are flowing (its transactions are open most of the time).
            wait_for(flowing(sub, len(sub.seen) + 5), 90, interval=0.01, what="normalizer output")
            time.sleep(rng.uniform(0.0, 0.15))
            norm.kill()
            norm.start()
        feed.halt = True
        feed.join(30)
        sent = feed.sent
        trades_topic = prefix + "crypto_trades_realtime"

        def all_trades_committed() -> bool:
            recs = committed_records(kafka_bootstrap, [trades_topic], "read_committed")
            return sum(isinstance(r, Trade) for r in recs) == sent

        wait_for(all_trades_committed, 120, interval=1.0, what="every trade committed")
        committed = committed_records(kafka_bootstrap, [prefix + t for t in CANONICAL], "read_committed")
        in_log = committed_records(kafka_bootstrap, [prefix + t for t in CANONICAL], "read_uncommitted")
        expected_redis = collections.Counter(
            (f"{kp}market_trades:{r.symbol}", shapes.trade_message(r))
            if isinstance(r, Trade)
            else (f"{kp}market_data:{r.symbol}", shapes.bar_message(r))
            for r in committed
            if isinstance(r, Trade) or (isinstance(r, Bar) and r.timeframe == "1m")
        )
        wait_for(lambda: len(sub.seen) >= sum(expected_redis.values()), 60, what="redis messages")
        time.sleep(1.0)  # anything extra (a duplicate) would arrive now
    finally:
        feed.halt = True
        norm.kill(signal.SIGTERM)
        sub.halt = True
    sub.join(5)
    seen_redis = collections.Counter(sub.seen)
    aborted = len(in_log) - len(committed)
    print(
        f"kills={KILLS} raw={feed.sent} committed={len(committed)} aborted_in_log={aborted}",
    )
    # The scenario happened: the normalizer's kills left aborted records in the canonical log.
    assert aborted > 0 and sum(isinstance(r, Bar) for r in committed) > 5
    assert [k for k, n in seen_redis.items() if n > 1] == []  # no duplicate
    assert seen_redis - expected_redis == collections.Counter()  # no phantom
    assert expected_redis - seen_redis == collections.Counter()  # nothing lost

    expected_js = {shapes.msg_id(r): shapes.nats_payload(r) for r in committed}
    assert len(expected_js) == len(committed)
    wait_for(lambda: jetstream_count(nats_url, stream) >= len(expected_js), 60, what="jetstream messages")
    got = jetstream_messages(nats_url, stream, delete=True)
    ids = collections.Counter(mid for mid, _ in got)
    assert [k for k, n in ids.items() if n > 1] == []  # no duplicate
    assert {mid: data for mid, data in got} == expected_js  # no phantom, nothing lost, same payloads


def test_aborted_transaction_is_forwarded_once_before_its_commit(
    kafka_bootstrap: str, redis_url: str, nats_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    """Deterministic, fast version of the above: one aborted transaction and its committed re-production."""
    from tests.integration.test_bridge_helpers import trade

    prefix = unique_name("ab") + "."
    kp, stream = unique_name("k") + ":", unique_name("AB").replace("-", "_")
    topic = prefix + "stock_trades_realtime"
    create_topics(kafka_bootstrap, [topic])
    sub = Subscriber(redis_url, f"{kp}market_*")
    sub.start()
    common = ["--bootstrap", kafka_bootstrap, "--topic-prefix", prefix, "--topics", "stock_trades_realtime"]
    redis_args = [*common, "--redis-url", redis_url, "--key-prefix", kp, "--no-control-plane"]
    procs.append(bridge_proc("redis", redis_args, tmp_path / "redis.log").start())
    nats_args = [*common, "--nats-url", nats_url, "--stream", stream, "--subject-prefix", f"{stream}."]
    procs.append(bridge_proc("nats", nats_args, tmp_path / "nats.log").start())
    codec = Codec()
    p = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": unique_name("tx")})
    p.init_transactions(30)
    first = [trade(i) for i in range(10, 20)]
    # A lower seq of the same key arriving later (another raw partition): new, not a copy.
    later = [trade(i) for i in range(0, 10)] + [trade(i) for i in range(20, 30)]
    try:
        p.begin_transaction()
        for r in first:
            p.produce(topic, codec.encode(r), b"AAPL")
        p.flush(10)
        # Forwarded while still uncommitted: the live path does not wait for the commit.
        wait_for(lambda: len(sub.seen) >= len(first), 30, what="uncommitted records forwarded")
        p.abort_transaction(30)
        p.begin_transaction()
        for r in [*first, *later]:  # the re-production, then more
            p.produce(topic, codec.encode(r), b"AAPL")
        p.commit_transaction(30)
        wait_for(lambda: len(sub.seen) >= 30, 30, what="committed records forwarded")
        time.sleep(1.0)  # a duplicate would arrive now
    finally:
        sub.halt = True
    sub.join(5)
    channel = f"{kp}market_trades:AAPL"
    assert sub.seen == [(channel, shapes.trade_message(r)) for r in [*first, *later]]
    wait_for(lambda: jetstream_count(nats_url, stream) >= 30, 30, what="jetstream messages")
    got = jetstream_messages(nats_url, stream, delete=True)
    assert sorted(mid for mid, _ in got) == sorted(shapes.msg_id(r) for r in [*first, *later])
    assert len(got) == 30
