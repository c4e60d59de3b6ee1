"""Scenario 5: Redis and NATS bridge throughput (draining a preloaded canonical backlog) and added latency
(canonical append -> PUBLISHed in Redis / delivered from the JetStream stream), one bridge at a time."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tickwire.bench.common import Ctx, Outcome, bridge_out
from tickwire.bench.env import Proc, Profile, create_topics, tickwire_argv
from tickwire.bench.stats import drain_window, summarize
from tickwire.contract.kafka_security import client_conf
from tickwire.infra.process import free_port
from tickwire.logs import kv

log = logging.getLogger(__name__)

TOPICS = ("stock_trades_realtime", "stock_quotes_realtime", "crypto_trades_realtime", "crypto_book_realtime")
STOCKS = ("AAPL", "MSFT", "SPY", "QQQ")
CRYPTO = ("BTC/USD", "ETH/USD")
E9 = 1_000_000_000
PROBE_SYMBOL = "PROBE"


def canonical_backlog(n: int, session: int) -> list[tuple[str, Any]]:
    """(topic, record): 40% stock trades, 30% stock quotes, 20% crypto trades, 10% crypto book diffs."""
    from tickwire.contract.records import BookUpdate, Level, Quote, Trade

    out: list[tuple[str, Any]] = []
    t = time.time_ns()
    stock: dict[str, Any] = dict(asset_class="equity", source="alpaca", venue="V", stream="stocks.iex")
    for i in range(n):
        k = i % 10
        ts = t + i * 1000
        common: dict[str, Any] = {"session": session, "seq": i + 1, "ts_event": ts, "ts_recv": ts}
        if k < 4:
            sym = STOCKS[i % len(STOCKS)]
            rec: Any = Trade(
                symbol=sym, **stock, **common, price=150 * E9 + (i % 100) * 10**7, size=100 * E9,
                trade_id=str(i),
            )  # fmt: skip
            out.append(("stock_trades_realtime", rec))
        elif k < 7:
            sym = STOCKS[i % len(STOCKS)]
            rec = Quote(
                symbol=sym, **stock, **common, bid_price=150 * E9, bid_size=3 * E9,
                ask_price=150 * E9 + 10**7, ask_size=2 * E9,
            )  # fmt: skip
            out.append(("stock_quotes_realtime", rec))
        elif k < 9:
            rec = Trade(
                symbol=CRYPTO[i % len(CRYPTO)], asset_class="crypto", source="coinbase", venue="COINBASE",
                stream="feed", **common, price=97_000 * E9 + i % 1000, size=E9 // 100, side="buy",
                side_rule="maker_inverted", trade_id=str(i),
            )  # fmt: skip
            out.append(("crypto_trades_realtime", rec))
        else:
            lv = tuple(Level((96_990 + j) * E9, (j + 1) * E9 // 10) for j in range(5))
            rec = BookUpdate(
                symbol=CRYPTO[i % len(CRYPTO)], asset_class="crypto", source="binance", venue="BINANCE",
                stream="spot", **common, bids=lv, asks=(), first_update_id=i, last_update_id=i,
            )  # fmt: skip
            out.append(("crypto_book_realtime", rec))
    return out


def _producer(bs: str, linger_ms: int) -> Any:
    from confluent_kafka import Producer

    return Producer(
        client_conf(bs)
        | {
            "linger.ms": linger_ms,
            "compression.type": "lz4",
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
        }
    )


def preload_canonical(bs: str, prefix: str, records: list[tuple[str, Any]]) -> dict[str, Any]:
    from tickwire.contract.codec import Codec
    from tickwire.contract.routing import key_for

    codec, prod = Codec(), _producer(bs, 20)
    t0 = time.perf_counter()
    for topic, rec in records:
        while True:
            try:
                prod.produce(prefix + topic, codec.encode(rec), key_for(rec))
                break
            except BufferError:
                prod.poll(0.05)
        prod.poll(0)
    left = prod.flush(120)
    return {"records": len(records), "seconds": round(time.perf_counter() - t0, 2), "unflushed": left}


def send_probes(bs: str, topic: str, n: int, rate: int, session: int) -> dict[int, int]:
    """Open-loop probe trades (size = probe index + 1, ts_recv = send time); returns index -> send ns."""
    from tickwire.contract.codec import Codec
    from tickwire.contract.records import Trade

    codec, prod = Codec(), _producer(bs, 0)
    # Connect and fetch the topic's metadata before the clock starts: otherwise the first ~0.5 s of
    # probes wait in the producer's queue and the bridge is charged for our own connection set-up.
    prod.list_topics(topic, timeout=10)
    prod.poll(0)
    sent: dict[int, int] = {}
    t0 = time.monotonic()
    for i in range(n):
        due = t0 + i / rate
        if (d := due - time.monotonic()) > 0:
            time.sleep(d)
        now = time.time_ns()
        rec = Trade(
            symbol=PROBE_SYMBOL,
            asset_class="equity",
            source="bench",
            venue="V",
            stream="probe",
            session=session,
            seq=i + 1,
            ts_event=now,
            ts_recv=now,
            price=10 * E9,
            size=(i + 1) * E9,
        )
        prod.produce(topic, codec.encode(rec), PROBE_SYMBOL.encode())
        sent[i] = now
        prod.poll(0)
    prod.flush(30)
    return sent


class RedisWatcher:
    """PSUBSCRIBE to the probe symbol's trade channel; probe index -> receive ns."""

    def __init__(self, url: str, channel: str) -> None:
        import redis

        self.r = redis.Redis.from_url(url)
        self.ps = self.r.pubsub()  # type: ignore[no-untyped-call]
        self.ps.subscribe(channel)
        self.got: dict[int, int] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True, name="redis-watch")

    def start(self) -> None:
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            m = self.ps.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if m and m.get("type") == "message":
                now = time.time_ns()
                try:
                    idx = int(Decimal(json.loads(m["data"])["size"])) - 1
                except (ValueError, KeyError, TypeError, ArithmeticError):
                    continue
                self.got.setdefault(idx, now)

    def stop(self) -> None:
        self._stop.set()
        self._t.join(5)
        self.ps.close()
        self.r.close()


class NatsWatcher:
    """JetStream ordered push consumer (new messages only) on the probe subject: seq - 1 -> receive ns."""

    def __init__(self, url: str, stream: str, subject: str) -> None:
        self.url, self.stream, self.subject = url, stream, subject
        self.got: dict[int, int] = {}
        self.ready = threading.Event()
        self.error: str | None = None
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._t = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),), daemon=True)

    def start(self) -> None:
        self._t.start()
        self.ready.wait(15)

    async def _main(self) -> None:
        import nats
        from nats.js.api import ConsumerConfig, DeliverPolicy

        self._stop = asyncio.Event()
        try:
            nc = await nats.connect(self.url)
            js = nc.jetstream()

            async def cb(msg: Any) -> None:
                now = time.time_ns()
                try:
                    d = json.loads(msg.data)
                    if d.get("symbol") == PROBE_SYMBOL:
                        self.got.setdefault(int(d["seq"]) - 1, now)
                except (ValueError, KeyError, TypeError):
                    pass

            sub = await js.subscribe(
                self.subject,
                stream=self.stream,
                cb=cb,
                ordered_consumer=True,
                config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW),
            )
        except Exception as exc:
            self.error = repr(exc)
            self.ready.set()
            return
        self.ready.set()
        await self._stop.wait()
        await sub.unsubscribe()
        await nc.close()

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._t.join(10)


def run_bridge(
    ctx: Ctx,
    kind: str,
    argv_extra: list[str],
    expected: int,
    watcher: Callable[[], Any],
    probe_topic: str,
    session: int,
) -> dict[str, Any]:
    bs, sz = ctx.servers.kafka, ctx.sizes
    p = ctx.prefix("bridge")
    port = free_port()
    args = ["--bootstrap", bs, "--topics", ",".join(TOPICS), "--topic-prefix", p]
    args += ["--metrics-port", str(port), "--log-level", "WARNING", *argv_extra]
    argv = tickwire_argv("bridge", kind, *args)
    proc = Proc(f"bridge-{kind}", argv, ctx.out_dir)
    samples: list[tuple[float, float]] = []
    prof: Profile | None = None
    out: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + sz.drain_timeout_s
        first: float | None = None
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"bridge {kind} exited rc={proc.p.returncode}: {proc.tail()}")
            v = bridge_out(port, kind)
            now = time.monotonic()
            if v is not None:
                samples.append((now, v))
                if first is None and v > 0:
                    first = now
                if v >= expected:
                    break
                if prof is None and ctx.profile and first and now - first > 2:
                    prof = Profile(proc.pid, sz.profile_s, ctx.out_dir, f"bridge-{kind}")
            time.sleep(0.25)
        win = drain_window(samples, expected)
        out |= {
            "records": int(samples[-1][1]) if samples else 0,
            "expected": expected,
            "drained": bool(samples) and samples[-1][1] >= expected,
            "records_per_s": win.rate if win else 0.0,
            "drain_seconds": round(win.seconds, 2) if win else None,
            "startup_to_first_write_s": round(first - proc.started, 2) if first else None,
        }
        # Added latency, live: the bridge is idle and caught up; probes arrive at a fixed rate.
        w = watcher()
        w.start()
        if getattr(w, "error", None):
            raise RuntimeError(f"{kind} watcher failed: {w.error}")
        sent = send_probes(bs, probe_topic, sz.bridge_probe, sz.bridge_probe_rate, session)
        t_end = time.monotonic() + 15
        while len(w.got) < len(sent) and time.monotonic() < t_end:
            time.sleep(0.1)
        w.stop()
        lat = [(w.got[i] - s) / 1e6 for i, s in sent.items() if i in w.got]
        out["added_latency_ms"] = summarize(lat)
        out["probes"] = {"sent": len(sent), "seen": len(lat), "rate": sz.bridge_probe_rate}
    finally:
        proc.stop()
        ctx.note_memory("bridge", proc, f"bridges: {kind}")
        if prof is not None:
            out["profile"] = prof.result()
    out["rss"] = proc.memory()
    return out


def bridges(ctx: Ctx) -> Outcome:
    bs, sz = ctx.servers.kafka, ctx.sizes
    p = ctx.prefix("bridge")
    create_topics(bs, [p + t for t in TOPICS], 3)
    session = time.time_ns()
    recs = canonical_backlog(sz.bridge_records, session)
    numbers: dict[str, Any] = {"preload": preload_canonical(bs, p, recs)}
    del recs
    notes: list[str] = []
    probe_topic = p + "stock_trades_realtime"
    expected = sz.bridge_records
    stream = "BENCH_" + "".join(ch for ch in ctx.run_id.upper() if ch.isalnum())
    runs: list[tuple[str, list[str], Callable[[], Any], Callable[[], None]]] = [
        (
            "redis",
            ["--redis-url", ctx.servers.redis_url, "--key-prefix", p, "--no-control-plane"],
            lambda: RedisWatcher(ctx.servers.redis_url, f"{p}market_trades:{PROBE_SYMBOL}"),
            lambda: _clean_redis(ctx.servers.redis_url, p),
        ),
        (
            "nats",
            ["--nats-url", ctx.servers.nats_url, "--subject-prefix", p, "--stream", stream],
            lambda: NatsWatcher(ctx.servers.nats_url, stream, f"{p}market.stocks.trades"),
            lambda: _clean_nats(ctx.servers.nats_url, stream),
        ),
    ]
    for i, (kind, args, watcher, clean) in enumerate(runs, start=1):
        try:
            numbers[kind] = run_bridge(ctx, kind, args, expected, watcher, probe_topic, session + i)
        except Exception as exc:
            log.exception("bridge run failed %s", kv(kind=kind))
            numbers[kind] = {"status": f"error: {exc}"}
            notes.append(f"{kind} bridge failed: {exc}")
        finally:
            clean()
        expected += sz.bridge_probe  # this run's probes are in the topic for the next run too
    notes.append(
        "added latency = receive time (Redis PUBLISH on market_trades:PROBE / JetStream ordered "
        "consumer delivery) - probe send time (producer linger 0, so ~ canonical append)"
    )
    log.info(
        "bridges done %s",
        kv(redis=numbers["redis"].get("records_per_s"), nats=numbers["nats"].get("records_per_s")),
    )
    return Outcome(
        numbers=numbers,
        params={
            "records": sz.bridge_records,
            "mix": "40% stock trades, 30% stock quotes, 20% crypto trades, 10% crypto book diffs (5 levels)",
            "topics": list(TOPICS),
            "partitions": 3,
            "probes": sz.bridge_probe,
            "probe_rate": sz.bridge_probe_rate,
            "bridge_defaults": "confluent-kafka sink loop (tickwire.bridges.consume), read_uncommitted, "
            "batch_max 5000, no batch wait; Redis: one Lua script per batch (identity windows)",
        },
        notes=notes,
    )


def _clean_redis(url: str, prefix: str) -> None:
    try:
        import redis

        r = redis.Redis.from_url(url)
        keys = list(r.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 500):
            r.delete(*keys[i : i + 500])
        r.close()
    except Exception as exc:
        log.warning("redis clean-up failed %s", kv(error=exc))


def delete_nats_stream(url: str, stream: str) -> None:
    """Delete a JetStream stream (raises when the server or the stream is missing)."""

    async def go() -> None:
        import nats

        nc = await nats.connect(url)
        try:
            await nc.jetstream().delete_stream(stream)
        finally:
            await nc.close()

    asyncio.run(go())


def _clean_nats(url: str, stream: str) -> None:
    try:
        delete_nats_stream(url, stream)
    except Exception as exc:
        log.warning("nats clean-up failed %s", kv(error=exc))
