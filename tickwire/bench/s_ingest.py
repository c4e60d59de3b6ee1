"""Scenarios 1 and 2: the Kafka-to-Kafka ceiling and producer throughput (RawProducer, DBN replay)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from tickwire.bench import data
from tickwire.bench.common import Ctx, Outcome, Skip
from tickwire.bench.env import Proc, create_topics, tickwire_argv
from tickwire.bench.stats import rate
from tickwire.contract.kafka_security import client_conf
from tickwire.logs import kv

log = logging.getLogger(__name__)

MB = 1_000_000


def _recorded_cycle(n: int) -> list[data.RawEvent]:
    """n recorded frames, Binance and Coinbase alternating (both cycled), as on a shared raw feed."""
    b = data.recorded_events("binance", "spot")
    c = data.recorded_events("coinbase", "feed")
    return [(b if i % 2 == 0 else c)[(i // 2) % len(b if i % 2 == 0 else c)] for i in range(n)]


def preload(
    bootstrap: str, topic_of: Any, events: list[data.RawEvent], seq: data.Sequencer
) -> dict[str, Any]:
    """Publish raw events through the real RawProducer (envelope headers, unique seqs); returns stats."""
    from tickwire.ingest.producer import RawProducer

    p = RawProducer(bootstrap, client_id="tickwire-bench-preload", linger_ms=20)
    t0 = time.perf_counter()
    nbytes = 0
    for ev in events:
        p.produce(topic_of(ev), ev.value, ev.key, seq.headers(ev), stream=ev.stream)
        nbytes += len(ev.value)
    left = p.flush(120)
    secs = time.perf_counter() - t0
    if left:
        raise RuntimeError(f"preload left {left} records unflushed")
    return {
        "records": len(events),
        "bytes": nbytes,
        "seconds": round(secs, 2),
        "records_per_s": rate(len(events), secs),
    }


def ceiling(ctx: Ctx) -> Outcome:
    from confluent_kafka import Consumer, Producer

    bs, n = ctx.servers.kafka, ctx.sizes.ceiling_events
    p = ctx.prefix("ceiling")
    tin, tout = p + "in", p + "out"
    create_topics(bs, [tin, tout], 3)
    events = _recorded_cycle(n)
    pre = preload(bs, lambda _ev: tin, events, data.Sequencer())
    conf = client_conf(bs) | {
        "linger.ms": 5,
        "compression.type": "lz4",
        "acks": "all",
        "enable.idempotence": True,
        "queue.buffering.max.kbytes": 65536,
    }
    prod = Producer(conf)
    cons = Consumer(
        client_conf(bs)
        | {
            "group.id": p + "group",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "fetch.max.bytes": 52428800,
        }
    )
    cons.subscribe([tin])
    count = nbytes = 0
    t0: float | None = None
    deadline = time.monotonic() + 300
    try:
        while count < n and time.monotonic() < deadline:
            msgs = cons.consume(num_messages=1000, timeout=1.0)
            if not msgs:
                continue
            if t0 is None:
                t0 = time.perf_counter()
            for m in msgs:
                if m.error():
                    continue
                v = m.value()
                while True:
                    try:
                        prod.produce(tout, v, m.key(), headers=m.headers())
                        break
                    except BufferError:
                        prod.poll(0.01)
                nbytes += len(v or b"")
                count += 1
            prod.poll(0)
        left = prod.flush(60)
        secs = time.perf_counter() - (t0 or time.perf_counter())
    finally:
        cons.close()
    if count < n:
        raise RuntimeError(f"ceiling consumed {count} of {n} before the deadline")
    return Outcome(
        numbers={
            "events_per_s": rate(count, secs),
            "mb_per_s": rate(nbytes / MB, secs),
            "events": count,
            "seconds": round(secs, 2),
            "avg_frame_bytes": round(nbytes / max(1, count), 1),
            "preload_events_per_s": pre["records_per_s"],
            "unflushed": left,
        },
        params={
            "events": n,
            "partitions": 3,
            "payloads": "recorded Binance+Coinbase frames with envelope headers",
            "producer": "confluent-kafka lz4 linger 5ms acks=all idempotent",
            "consume_batch": 1000,
        },
        notes=[
            "one Python thread: consume(num_messages=1000) -> produce(same value, key, headers) -> poll(0)"
        ],
    )


def _timed_produce(loop: Callable[[], None], producer: Any, n: int, nbytes: int) -> dict[str, Any]:
    """Rates of one enqueue loop over ``n`` records, with and without the final flush."""
    t0 = time.perf_counter()
    loop()
    t_enq = time.perf_counter() - t0
    left = producer.flush(120)
    secs = time.perf_counter() - t0
    return {
        "events_per_s": rate(n, secs),
        "mb_per_s": rate(nbytes / MB, secs),
        "enqueue_events_per_s": rate(n, t_enq),
        "unflushed": left,
    }


def ingest(ctx: Ctx) -> Outcome:
    from tickwire.contract.codec import Codec
    from tickwire.ingest.producer import RawProducer
    from tickwire.ingest.runner import Runner
    from tickwire.vendors.binance.adapter import BinanceAdapter
    from tickwire.vendors.binance.settings import BinanceSettings
    from tickwire.vendors.coinbase.adapter import CoinbaseAdapter
    from tickwire.vendors.coinbase.settings import CoinbaseSettings

    bs, n = ctx.servers.kafka, ctx.sizes.ingest_events
    p = ctx.prefix("ingest")
    create_topics(bs, [p + "binance.raw", p + "coinbase.raw", p + "databento.raw"], 3)
    frames = _recorded_cycle(n)
    numbers: dict[str, Any] = {}
    notes: list[str] = []

    # a) RawProducer.produce with envelope headers built per record (no vendor logic)
    prod = RawProducer(bs, client_id="tickwire-bench-rawproducer")
    seq = data.Sequencer()
    nbytes = sum(len(ev.value) for ev in frames)

    def raw_produce() -> None:
        for ev in frames:
            prod.produce(p + ev.source + ".raw", ev.value, ev.key, seq.headers(ev), stream=ev.stream)

    numbers["raw_producer"] = _timed_produce(raw_produce, prod, n, nbytes)

    # b) the vendor producers' per-frame path: Runner.publish (metrics, seq, envelope, classify, produce)
    codec = Codec()
    prod2 = RawProducer(bs, client_id="tickwire-bench-runner")
    binance, coinbase = BinanceSettings.load(topic_prefix=p), CoinbaseSettings.load(topic_prefix=p)
    runners = {
        "binance": Runner(BinanceAdapter(binance), prod2, binance, subs={}, encode=codec.encode),
        "coinbase": Runner(CoinbaseAdapter(coinbase), prod2, coinbase, subs={}, encode=codec.encode),
    }

    def runner_publish() -> None:
        for ev in frames:
            runners[ev.source].publish(ev.value, time.time_ns())

    numbers["runner_publish"] = _timed_produce(runner_publish, prod2, n, nbytes)
    numbers["avg_frame_bytes"] = round(nbytes / max(1, n), 1)

    # c) tickwire replay dbn --speed 0 of a generated file (a separate process, as operators run it)
    t0 = time.perf_counter()
    try:
        path = data.dbn_file(ctx.cache_dir, ctx.sizes.dbn_records)
    except Exception as exc:  # the generator lives in tests/fixtures: absent in an installed package
        raise Skip(f"cannot generate the DBN file: {exc}") from exc
    gen_s = time.perf_counter() - t0
    numbers["dbn_replay"] = replay_dbn(ctx, path, p + "databento.raw", "ingest")
    numbers["dbn_replay"]["file_generation_s"] = round(gen_s, 1)
    return Outcome(
        numbers=numbers,
        params={
            "events": n,
            "dbn_records": ctx.sizes.dbn_records,
            "dbn_file": str(path),
            "payloads": "recorded Binance+Coinbase frames cycled",
            "linger_ms": 5,
            "compression": "lz4",
        },
        notes=[*notes, "events/s include the final flush (every record acknowledged by the broker)"],
    )


_REPLAY_LINE = re.compile(
    r"records=(\d+) messages=(\d+) seconds=([\d.]+) records_per_s=(\d+) unflushed=(\d+)"
)


def replay_dbn(ctx: Ctx, path: Any, topic: str, during: str) -> dict[str, Any]:
    """Run ``tickwire replay dbn FILE --speed 0`` into ``topic``; its own numbers plus wall time and RSS."""
    argv = tickwire_argv(
        "replay",
        "dbn",
        str(path),
        "--speed",
        "0",
        "--topic",
        topic,
        "--bootstrap",
        ctx.servers.kafka,
        "--no-progress",
    )
    t0 = time.perf_counter()
    proc = Proc(f"replay-dbn-{during}", argv, ctx.out_dir)
    rc = proc.wait(600)
    wall = time.perf_counter() - t0
    proc.stop()
    ctx.note_memory("producer", proc, f"{during}: replay dbn")
    m = _REPLAY_LINE.search(proc.output())
    if rc != 0 or m is None:
        raise RuntimeError(f"replay dbn failed rc={rc}: {proc.tail()}")
    records, messages, secs, rps, unflushed = m.groups()
    log.info("replay dbn done %s", kv(records=records, per_s=rps, wall=f"{wall:.1f}"))
    return {
        "records": int(records),
        "messages": int(messages),
        "records_per_s": float(rps),
        "seconds": float(secs),
        "wall_seconds_with_startup": round(wall, 2),
        "wall_records_per_s": rate(int(records), wall),
        "unflushed": int(unflushed),
        "rss": proc.memory(),
    }
