"""Helpers of the broker-failover pipeline test in test_infra_cluster.py (no tests here): the pipeline's
processes, reading topics whole, the simulator's sent log and control endpoint, the raw-vs-sent check,
the offline expectation of the canonical topics, the coordinator brokers (bridges: cluster_bridges.py).
"""

from __future__ import annotations

import base64
import collections
import json
import re
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.helpers import unique_name, wait_for
from tests.integration.test_bridge_helpers import TICKWIRE, Proc, bridge_proc
from tickwire import topic_admin
from tickwire.contract.codec import Codec, to_json_dict
from tickwire.contract.envelope import H_STREAM, Envelope
from tickwire.normalize.parse_cli import offline_pipeline
from tickwire.normalize.pipeline import RawMessage
from tickwire.vendors.binance.adapter import BinanceAdapter

CANONICAL = (
    "crypto_trades_realtime",
    "crypto_quotes_realtime",
    "crypto_book_realtime",
    "crypto_bars_staging",
)
WS_STREAM = BinanceAdapter.stream  # the envelope stream of the producer's WebSocket frames
Canon = tuple[str, str, str]  # (topic without the test prefix, key, the record as sorted JSON)


@dataclass(frozen=True)
class Row:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def read_rows(
    bootstrap: str, topics: list[str], isolation: str = "read_committed", idle: float = 2.0
) -> list[Row]:
    """Every record of ``topics`` from offset 0 up to the high watermarks taken first (a live topic
    never goes idle), or until nothing new arrived for ``idle`` seconds (read_committed: transaction
    markers leave the last offsets without a record)."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("rows"),
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        md = c.list_topics(timeout=10).topics
        tps = [TopicPartition(t, p, 0) for t in topics if t in md for p in md[t].partitions]
        ends = {(tp.topic, tp.partition): c.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
        todo = {k for k, hi in ends.items() if hi > 0}
        c.assign(tps)
        out: list[Row] = []
        last = time.monotonic()
        while todo and time.monotonic() - last < idle:
            for m in c.consume(1000, timeout=0.2):
                if m.error() is None:
                    k = (m.topic(), m.partition())
                    if m.offset() >= ends[k]:
                        todo.discard(k)
                        continue
                    headers = [(h, v or b"") for h, v in m.headers() or []]
                    out.append(Row(k[0], k[1], m.offset(), m.key(), m.value() or b"", headers))
                    last = time.monotonic()
                    if m.offset() >= ends[k] - 1:
                        todo.discard(k)
        return out
    finally:
        c.close()


def isr_full(bootstrap: str, match: str, brokers: int) -> bool:
    """Whether every partition of every topic whose name contains ``match`` (and of the transaction and
    offsets logs) has all ``brokers`` replicas in sync."""
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    internal = ("__transaction_state", "__consumer_offsets")
    topics = [t for name, t in md.topics.items() if match in name or name in internal]
    return bool(topics) and all(len(p.isrs) == brokers for t in topics for p in t.partitions.values())


def leader_of(bootstrap: str, topic: str, partition: int) -> int:
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return int(md.topics[topic].partitions[partition].leader)


def _java_hash(s: str) -> int:
    """Java's ``String.hashCode`` (over UTF-16 code units), signed 32-bit."""
    units = s.encode("utf-16-be")
    h = 0
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i : i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def normalizer_ids(prefix: str) -> tuple[str, str]:
    """(group id, transactional id) of ``tickwire normalize --instance-id 0`` under ``prefix``."""
    group = prefix + "tickwire-normalizer"
    return group, group + "-0"


def _leaders(bootstrap: str, internal_topic: str) -> list[int] | None:
    """Leader of each partition of ``internal_topic``, in partition order; None before it exists."""
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(internal_topic, timeout=10)
    parts = md.topics[internal_topic].partitions
    return [int(parts[i].leader) for i in sorted(parts)] if parts else None


def _coordinator(leaders: list[int], key: str) -> int:
    """The broker's choice, ``Utils.abs(String.hashCode) % partitions``, mapped to its leader."""
    h = _java_hash(key)
    return leaders[(0 if h == -(1 << 31) else abs(h)) % len(leaders)]


def coordinator(bootstrap: str, internal_topic: str, key: str) -> int | None:
    """The broker coordinating ``key`` (a transactional id in ``__transaction_state``, a group id in
    ``__consumer_offsets``): the leader of its partition (the client here has no describe-transactions
    call). None before the topic exists."""
    leaders = _leaders(bootstrap, internal_topic)
    return None if leaders is None else _coordinator(leaders, key)


def coordinated_by_one(bootstrap: str) -> str | None:
    """A topic prefix under which the normalizer's group and transactional id (``normalizer_ids``) have
    the same coordinator broker: killing it kills both coordinators at once."""
    txn_leaders = _leaders(bootstrap, "__transaction_state")
    group_leaders = _leaders(bootstrap, "__consumer_offsets")
    if txn_leaders is None or group_leaders is None:
        return None  # not both internal topics yet
    for _ in range(200):
        prefix = unique_name("fo") + "."
        group, txn_id = normalizer_ids(prefix)
        broker = _coordinator(txn_leaders, txn_id)
        if broker >= 0 and broker == _coordinator(group_leaders, group):
            return prefix
    return None  # leaders still moving (-1), or no match in 200 tries


# ---- the processes ------------------------------------------------------------------------------------


@dataclass
class Pipeline:
    """Simulator, producer, normalizer and both bridges as processes against ``bootstrap``."""

    bootstrap: str
    prefix: str
    tmp: Path
    sim: Proc
    ingest: Proc
    stages: list[Proc]  # producer, normalizer, bridges: each must live through the failover
    ws_url: str
    key_prefix: str = ""
    js_stream: str = ""

    def watch(self, what: str) -> None:
        """Fail at once, with its last log lines, if any stage has exited: the producer, the normalizer
        and the bridges must all live through the failover (the runtime recovers from a broker loss
        in-process: restore lookups retried, a fatally failed transactional producer replaced)."""
        for p in self.stages:
            if p.alive():
                continue
            lines = [ln for ln in p.log.read_text(errors="replace").splitlines() if not ln.startswith("%")]
            why = next((ln for ln in reversed(lines) if " ERROR " in ln), lines[-1] if lines else "")
            raise AssertionError(f"{p.argv[1:3]} exited while waiting for {what}: {why[:300]} {lines[-3:]}")

    @property
    def normalizer_txn_id(self) -> str:
        return normalizer_ids(self.prefix)[1]

    @property
    def http_url(self) -> str:
        return "http" + self.ws_url.removeprefix("ws")

    @property
    def raw_topic(self) -> str:
        return self.prefix + "binance.raw"

    @property
    def sent_log(self) -> Path:
        return self.tmp / "sent.jsonl"


def start_pipeline(
    bootstrap: str, tmp: Path, procs: list[Proc], redis_url: str, nats_url: str, prefix: str
) -> Pipeline:
    """Apply topics.yaml (replication 3, under ``prefix``), then start every stage."""
    kp, js_stream = unique_name("fok") + ":", unique_name("FO").replace("-", "_").upper()
    assert (
        topic_admin.main(["apply", "--bootstrap", bootstrap, "--replication", "3", "--prefix", prefix]) == 0
    )
    # Local schema ids everywhere (no shared registry): the cluster run is self-contained.
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SCHEMA_REGISTRY_URL": "", "TICKWIRE_LOG_LEVEL": "INFO"}
    log = tmp / "sim.log"
    sim_argv = [TICKWIRE, "simulate", "binance", "--rate", "200", "--seed", "15"]
    sim = Proc([*sim_argv, "--sent-log", str(tmp / "sent.jsonl")], log, env).start()
    procs.append(sim)
    found = wait_for(lambda: re.search(r"listening (ws://\S+)", log.read_text()), 60, what="simulator up")
    assert found is not None
    ws_url = found.group(1)
    common = ["--bootstrap", bootstrap, "--topic-prefix", prefix, "--metrics-port", "0"]
    ingest_argv = [
        TICKWIRE,
        "ingest",
        "binance",
        "--url",
        ws_url + "/stream",
        "--rest-url",
        "http" + ws_url[2:],
    ]
    # --stale-after: the muted simulator at the end must not make the producer reconnect
    ingest = Proc([*ingest_argv, *common, "--no-control", "--stale-after", "300"], tmp / "ingest.log", env)
    norm_env = {**env, "NORMALIZER_DATA_DIR": str(tmp / "norm")}
    # A stable slot id, as `tickwire run` gives it: a restarted normalizer fences its predecessor's
    # transaction at once instead of waiting for the transaction timeout.
    norm_argv = [TICKWIRE, "normalize", "--vendors", "binance", "--instance-id", "0", *common]
    normalizer = Proc(norm_argv, tmp / "normalize.log", norm_env)
    bridge = [*common, "--topics", ",".join(CANONICAL)]
    redis_args = [*bridge, "--redis-url", redis_url, "--key-prefix", kp, "--no-control-plane"]
    nats_args = [*bridge, "--nats-url", nats_url, "--stream", js_stream, "--subject-prefix", js_stream + "."]
    stages = [
        ingest,
        normalizer,
        bridge_proc("redis", redis_args, tmp / "bridge-redis.log", env),
        bridge_proc("nats", nats_args, tmp / "bridge-nats.log", env),
    ]
    for p in stages:
        procs.append(p.start())
    return Pipeline(bootstrap, prefix, tmp, sim, ingest, stages, ws_url, kp, js_stream)


def wait_alive(predicate: Callable[[], bool], pl: Pipeline, timeout: float, what: str) -> None:
    """``wait_for`` that keeps the stages in check meanwhile (``Pipeline.watch``)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        pl.watch(what)
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def settled(read: Callable[[], int], quiet: float = 1.0, timeout: float = 30.0) -> int:
    """``read()`` once it returned the same value for ``quiet`` seconds."""
    last, since = read(), time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    raise AssertionError(f"still changing after {timeout}s: {last}")


def ws_frames_in(bootstrap: str, raw_topic: str) -> int:
    rows = read_rows(bootstrap, [raw_topic], "read_uncommitted", idle=0.5)
    return sum(1 for r in rows if (H_STREAM, WS_STREAM.encode()) in r.headers)


# ---- the simulator ------------------------------------------------------------------------------------


def sim_control(http_url: str, path: str) -> Any:
    with urllib.request.urlopen(http_url + path, timeout=10) as resp:
        return json.loads(resp.read())


@dataclass
class SentLog:
    ws: dict[int, list[bytes]]  # connection id -> frames in send order
    rest: list[bytes]  # REST answer bodies


def sim_frames(http_url: str) -> int:
    """WebSocket frames the simulator sent so far, over all connections."""
    return sum(int(c["frames"]) for c in sim_control(http_url, "/control/stats")["connections"])


def load_sent_log(path: Path) -> SentLog:
    log = SentLog(collections.defaultdict(list), [])
    for line in path.read_text().splitlines():
        doc = json.loads(line)
        data = base64.b64decode(doc["data"])
        if doc["kind"] == "ws":
            log.ws[doc["conn"]].append(data)
        else:
            log.rest.append(data)
    return log


def check_raw_against_sent(raw: list[Row], sent: SentLog, partitions: int) -> int:
    """Assert the raw topic holds exactly what the simulator sent: its one connection's frames once each,
    in seq order, and each REST answer once (reference data once per raw partition, as the producer
    broadcasts it). Returns how many raw records are REST answers."""
    assert list(sent.ws) == [1], f"connections: {list(sent.ws)}"
    envs = {(r.partition, r.offset): Envelope.from_headers(r.headers) for r in raw}
    spot = sorted(
        (r for r in raw if envs[r.partition, r.offset].stream == WS_STREAM),
        key=lambda r: envs[r.partition, r.offset].seq,
    )
    assert [envs[r.partition, r.offset].seq for r in spot] == list(range(1, len(sent.ws[1]) + 1))
    assert [r.value for r in spot] == sent.ws[1], "raw WebSocket frames differ from those sent"
    rest = [r for r in raw if envs[r.partition, r.offset].stream.startswith("rest.")]
    ids = [(envs[r.partition, r.offset].stream, envs[r.partition, r.offset].seq) for r in rest]
    copies = collections.Counter(ids)
    assert all(n == (partitions if s == "rest.exchangeInfo" else 1) for (s, _), n in copies.items()), copies
    once = dict(zip(ids, (r.value for r in rest), strict=True))
    assert collections.Counter(once.values()) == collections.Counter(sent.rest), "raw REST records differ"
    assert len(raw) == len(spot) + len(rest), "raw records the simulator did not send"
    return len(rest)


# ---- canonical records ----------------------------------------------------------------------------------


def _canon(topic: str, key: bytes | None, record: Any) -> Canon:
    return topic, (key or b"").decode(), json.dumps(to_json_dict(record), sort_keys=True, default=str)


def offline(raw: list[Row], prefix: str) -> collections.Counter[Canon]:
    """What the normalizer's per-message path (the one `tickwire parse` runs) makes of exactly these raw
    records, each raw partition in offset order as the live worker sees it, topics without ``prefix``
    (the offline path's settings have none). No DLQ is expected."""
    codec = Codec(None)
    pipe = offline_pipeline(codec)
    out: collections.Counter[Canon] = collections.Counter()
    for r in sorted(raw, key=lambda r: (r.partition, r.offset)):
        topic = r.topic.removeprefix(prefix)
        res = pipe.process(RawMessage(topic, r.partition, r.offset, r.key, r.value, r.headers))
        assert res.status != "dlq", (r, res.error_class, res.outputs[0].headers)
        for o in res.outputs:
            out[_canon(o.topic, o.key, codec.decode(o.value))] += 1
    return out


def live(rows: list[Row], prefix: str, registry_url: str | None = None) -> collections.Counter[Canon]:
    """The canonical records of ``rows``, compared as decoded values (a registry's ids may differ from
    the offline ones: decode with the registry the writers used)."""
    codec = Codec(registry_url)
    return collections.Counter(
        _canon(r.topic.removeprefix(prefix), r.key, codec.decode(r.value)) for r in rows
    )


def explain(want: collections.Counter[Canon], got: collections.Counter[Canon]) -> str:
    extra, missing = got - want, want - got
    return (
        f"{sum(missing.values())} missing, {sum(extra.values())} extra or duplicated; first missing "
        f"{next(iter(missing), None)}, first extra {next(iter(extra), None)}"
    )
