"""The normalizer (tickwire.runtime, exactly-once) as real worker processes against the local Kafka.

One raw topic (binance.raw, 3 partitions) gets the recorded Binance session followed by a synthetic
aggTrade stream, with malformed payloads in between. What must come out is computed offline by the same
pure Pipeline over each partition's records in order (state per raw partition, as in the worker); the
worker's output (read with read_committed) must equal it as a multiset: every record exactly once, bytes
included. The input arrives in 21 chunks and the worker is SIGKILLed 20 times, each time right after it
committed progress (so kills land in processing, in commits and in restores). Then the replay check: stop
it, reset its group to the earliest offsets with `tickwire replay offsets --execute`, start it again:
each output partition must then hold the first run's records twice, in the same order per key.
"""

from __future__ import annotations

import collections
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import unique_name, wait_for
from tickwire import vendors as registry
from tickwire.contract import routing
from tickwire.contract.codec import Codec
from tickwire.contract.envelope import H_ERROR_CLASS, H_SRC_OFFSET, Envelope
from tickwire.normalize.pipeline import Pipeline, RawMessage

pytestmark = pytest.mark.integration

RECORDED = Path("/work/shared/data/recorded/cryptofeed-BINANCE.ws.1.0")
PARTS = 3
SESSION = 1_700_000_000_000_000_000
GARBAGE = [b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTr', b"\x00\xff\xfe binary", b'{"e":"nope"}']
TICKWIRE = [sys.executable, "-m", "tickwire.cli"]


def frames() -> list[tuple[bytes, bytes, int]]:
    """(key, payload, ts_recv ns): the recorded session, then 3000 synthetic aggTrades over ~25 minutes."""
    out = []
    for line in RECORDED.read_text().splitlines():
        m = re.match(r"^([0-9.]+): (.*)$", line)
        if m:
            km = re.match(r'\{"stream":"([a-z0-9]+)@', m.group(2))
            out.append(
                (
                    (km.group(1).upper() if km else "ws").encode(),
                    m.group(2).encode(),
                    int(float(m.group(1)) * 1e9),
                )
            )
    t_ms = 1_634_000_000_000
    for i in range(3000):
        sym = ("BTCUSDT", "ETHUSDT", "BNBBTC", "XRPEUR")[i % 4]
        t_ms += 500 + (i * 7919) % 700
        ev_ms = t_ms - (i * 131) % 4000  # some out of order, some late for their window
        data = {
            "e": "aggTrade", "E": t_ms, "s": sym, "a": i, "p": f"{100 + (i * 37) % 91}.{i % 997:03d}",
            "q": f"{(i * 13) % 50 + 1}.{i % 7}", "f": i, "l": i, "T": ev_ms, "m": i % 3 == 0, "M": True,
        }  # fmt: skip
        payload = json.dumps({"stream": f"{sym.lower()}@aggTrade", "data": data}).encode()
        out.append((sym.encode(), payload, t_ms * 1_000_000 + 100))
    return out


def raw_messages(prefix: str) -> list[tuple[int, bytes, bytes, list[tuple[str, bytes]]]]:
    """(partition, key, value, headers) in produce order, garbage every 97 records."""
    msgs = []
    seq = 0
    for i, (key, payload, ts) in enumerate(frames()):
        items = [(key, payload)]
        if i % 97 == 50:
            items.insert(0, (key, GARBAGE[i % 3]))
        for k, v in items:
            seq += 1
            env = Envelope("binance", "ws", SESSION, seq, ts, "json", "test")
            msgs.append((zlib.crc32(k) % PARTS, k, v, env.to_headers()))
    return msgs


def expected(prefix: str, msgs: list[Any]) -> tuple[collections.Counter[Any], int]:
    codec = Codec()
    p = Pipeline(
        get_parser=registry.get_parser,
        encode=codec.encode,
        topic_for=routing.topic_for,
        key_for=routing.key_for,
        store={},
        topic_prefix=prefix,
        bar_sources=frozenset({"binance"}),
        bar_lateness_ns=2_000_000_000,
        seq_gap_sources=frozenset({"databento"}),
    )
    offsets = collections.Counter[int]()
    out: collections.Counter[Any] = collections.Counter()
    dlq = 0
    for part, k, v, h in msgs:
        res = p.process(RawMessage(prefix + "binance.raw", part, offsets[part], k, v, h))
        offsets[part] += 1
        for o in res.outputs:
            if o.topic.endswith(".dlq"):
                dlq += 1
            else:
                out[(o.topic, o.key, o.value)] += 1
    return out, dlq


class Worker:
    def __init__(
        self, prefix: str, bootstrap: str, log: Path, *, instance: str = "0", static: bool = True,
        guarantee: str = "exactly_once", vendors: str = "binance",
    ) -> None:  # fmt: skip
        self.prefix, self.bootstrap, self.log = prefix, bootstrap, log
        self.instance, self.static, self.guarantee, self.vendors = instance, static, guarantee, vendors
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "NORMALIZER_BAR_LATENESS_MS": "2000",
            "NORMALIZER_SESSION_TIMEOUT_MS": "6000",
            # A restarted slot takes its partitions back at once (no session-timeout wait) and its
            # init_transactions aborts the killed process's open transaction.
            "NORMALIZER_STATIC_MEMBERSHIP": "true" if self.static else "false",
        }
        args = [
            "normalize",
            "--topic-prefix",
            self.prefix,
            "--vendors",
            self.vendors,
            "--create-topics",
            "--metrics-port",
            "0",
            "--instance-id",
            self.instance,
            "--processing-guarantee",
            self.guarantee,
        ]
        with self.log.open("ab") as f:
            self.proc = subprocess.Popen([*TICKWIRE, *args], stdout=f, stderr=subprocess.STDOUT, env=env)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)
        self.proc = None


def read_all(bootstrap: str, topics: list[str], idle: float = 2.0) -> dict[tuple[str, int], list[Any]]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_name("rd"), "enable.auto.commit": False,
                  "isolation.level": "read_committed", "auto.offset.reset": "earliest"})  # fmt: skip
    try:
        md = c.list_topics(timeout=10).topics
        tps = [TopicPartition(t, p, 0) for t in topics if t in md for p in md[t].partitions]
        c.assign(tps)
        out: dict[tuple[str, int], list[Any]] = collections.defaultdict(list)
        last = time.monotonic()
        while time.monotonic() - last < idle:
            for m in c.consume(500, timeout=0.2):
                if m.error():
                    continue
                out[(m.topic(), m.partition())].append((m.key(), m.value(), dict(m.headers() or [])))
                last = time.monotonic()
        return out
    finally:
        c.close()


def produce(bootstrap: str, topic: str, msgs: list[Any]) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for part, k, v, h in msgs:
        p.produce(topic, v, k, partition=part, headers=h)
    assert p.flush(30) == 0


def output_topics(prefix: str) -> list[str]:
    return [prefix + t for t in ("crypto_trades_realtime", "crypto_quotes_realtime", "crypto_book_realtime",
                                 "crypto_bars_staging", "tickwire.gaps")]  # fmt: skip


@pytest.fixture(scope="module")
def setup(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from confluent_kafka.admin import AdminClient, NewTopic

    prefix = unique_name("nz") + "."
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for f in admin.create_topics([NewTopic(prefix + "binance.raw", PARTS, 1)]).values():
        f.result(15)
    msgs = raw_messages(prefix)
    exp, exp_dlq = expected(prefix, msgs)
    w = Worker(prefix, kafka_bootstrap, tmp_path_factory.mktemp("nz") / "worker.log")
    state = {"prefix": prefix, "msgs": msgs, "expected": exp, "dlq": exp_dlq, "worker": w, "admin": admin}
    try:
        yield state
    finally:
        w.kill(signal.SIGTERM)
        topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        admin.delete_topics(topics)


def counter_of(got: dict[tuple[str, int], list[Any]]) -> collections.Counter[Any]:
    return collections.Counter((t, k, v) for (t, _), rows in got.items() for k, v, _ in rows)


def committed(admin: Any, group: str, topic: str) -> int:
    from confluent_kafka import ConsumerGroupTopicPartitions

    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(10)
    return sum(tp.offset for tp in res.topic_partitions if tp.topic == topic and tp.offset > 0)


def test_exactly_once_through_twenty_kills_with_dlq(setup: dict[str, Any], kafka_bootstrap: str) -> None:
    prefix, msgs, w, admin = setup["prefix"], setup["msgs"], setup["worker"], setup["admin"]
    group, raw = prefix + "tickwire-normalizer", prefix + "binance.raw"
    kills = 20
    chunks = [
        msgs[len(msgs) * i // (kills + 1) : len(msgs) * (i + 1) // (kills + 1)] for i in range(kills + 1)
    ]
    rng = random.Random(20)
    w.start()
    for n, chunk in enumerate(chunks):
        before = committed(admin, group, raw) if n else 0
        produce(kafka_bootstrap, raw, chunk)
        if n == kills:
            break
        # Kill as soon as this chunk is being processed (a commit moved), i.e. mid-stream.
        wait_for(lambda b=before: committed(admin, group, raw) > b, timeout=90, what="worker progress")
        time.sleep(rng.uniform(0.0, 0.05))
        w.kill(signal.SIGKILL)
        w.start()

    def complete() -> bool:
        return counter_of(read_all(kafka_bootstrap, output_topics(prefix), idle=1.0)) == setup["expected"]

    try:
        wait_for(complete, timeout=120, interval=1.0, what="all canonical records exactly once")
    except AssertionError:
        got = counter_of(read_all(kafka_bootstrap, output_topics(prefix)))
        exp = setup["expected"]
        dupes = sum((got - exp).values())
        missing = sum((exp - got).values())
        raise AssertionError(f"duplicates={dupes} missing={missing} (expected {sum(exp.values())})") from None
    exp = setup["expected"]
    assert sum(exp.values()) > 3000 and any(t.endswith("crypto_bars_staging") for t, _, _ in exp)
    # The DLQ holds each malformed payload once, with its reason and source offset.
    dlq = read_all(kafka_bootstrap, [raw + ".dlq"])
    rows = [r for rs in dlq.values() for r in rs]
    assert len(rows) == setup["dlq"] > 30
    assert {r[1] for r in rows} == set(GARBAGE)
    assert all(r[2][H_ERROR_CLASS] and r[2][H_SRC_OFFSET].isdigit() for r in rows)
    assert f"{group}-{raw}-changelog" in admin.list_topics(timeout=10).topics
    assert w.log.read_text().count("transactional producer ready") == kills + 1
    # The offsets tool refuses while the worker is a live member of the group.
    args = ["replay", "offsets", "--group", group, "--topic", raw, "--to-earliest", "--execute"]
    res = subprocess.run([*TICKWIRE, *args, "--bootstrap", kafka_bootstrap], capture_output=True, text=True)
    assert res.returncode == 1 and "active member" in res.stderr


def test_replay_to_earliest_reproduces_identical_records(setup: dict[str, Any], kafka_bootstrap: str) -> None:
    prefix, w = setup["prefix"], setup["worker"]
    group, raw = prefix + "tickwire-normalizer", prefix + "binance.raw"
    first = read_all(kafka_bootstrap, output_topics(prefix))
    assert counter_of(first) == setup["expected"]
    w.kill(signal.SIGTERM)  # clean stop: leaves the group
    admin = setup["admin"]
    wait_for(lambda: not admin.describe_consumer_groups([group])[group].result(10).members, timeout=60)
    cmd = [
        *TICKWIRE,
        "replay",
        "offsets",
        "--group",
        group,
        "--topic",
        raw,
        "--to-earliest",
        "--bootstrap",
        kafka_bootstrap,
    ]
    dry = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "dry run" in dry.stdout and f"{raw}  0" in dry.stdout
    subprocess.run([*cmd, "--execute"], capture_output=True, text=True, check=True)
    assert committed(admin, group, raw) == 0
    w.start()

    def doubled() -> bool:
        got = read_all(kafka_bootstrap, output_topics(prefix), idle=1.0)
        return all(len(got.get(tp, [])) == 2 * len(rows) for tp, rows in first.items())

    wait_for(doubled, timeout=120, interval=1.0, what="replayed output")
    got = read_all(kafka_bootstrap, output_topics(prefix))
    for tp, rows in first.items():
        # Same records, same order per key. Across keys an output partition interleaves records of
        # several raw partitions, consumed concurrently, so only per-key order is deterministic.
        assert per_key(got[tp][len(rows) :]) == per_key(rows), tp


def per_key(rows: list[Any]) -> dict[bytes, list[bytes]]:
    out: dict[bytes, list[bytes]] = collections.defaultdict(list)
    for k, v, _ in rows:
        out[k].append(v)
    return dict(out)
