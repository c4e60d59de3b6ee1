"""The whole pipeline against real servers, as separate processes:

Alpaca simulator -> `tickwire ingest alpaca` -> alpaca.raw -> `tickwire normalize` -> canonical topics
-> `tickwire bridge redis` / `tickwire bridge nats`.

Expected canonical records are computed offline from the exact frames the simulator sent, with the same
parser; the pipeline must deliver each of them exactly once, to Redis and to JetStream. Then the legacy
control plane: a `subscribe` on Redis `system:subscription_updates` must reach the running producer through
`control.subscriptions`, and the new symbol's trades must arrive in Redis.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer

from tests.helpers import unique_name, wait_for
from tests.integration.test_bridge_helpers import TICKWIRE, Proc, bridge_proc, procs  # noqa: F401
from tickwire.contract.codec import Codec, schema_name, to_json_dict
from tickwire.contract.envelope import Envelope
from tickwire.contract.routing import topic_for
from tickwire.monitor import group_lag
from tickwire.vendors import get_parser
from tickwire.vendors.alpaca.simulator import AlpacaSimulator

pytestmark = pytest.mark.integration

# Fields that depend on when/where the producer read the frame, not on the frame itself.
_RUN_FIELDS = ("session", "seq", "ts_recv")


def _identity(d: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in d.items() if k not in _RUN_FIELDS}, sort_keys=True, default=str)


def expected_records(frames: list[bytes]) -> list[Any]:
    parser = get_parser("alpaca")
    state = parser.new_state()
    out: list[Any] = []
    for i, frame in enumerate(frames, 1):
        env = Envelope("alpaca", "stocks.iex", 1, i, time.time_ns(), "json")
        out += parser.parse(frame, env, state).records
    return out


def read_committed(bootstrap: str, topics: list[str], want: int, timeout: float) -> list[Any]:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("e2e-reader"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    c.subscribe(topics)
    codec, got = Codec(), []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(got) < want:
            for m in c.consume(1000, timeout=0.5):
                if m.error() is None and m.value() is not None:
                    got.append(codec.decode(m.value()))
        # a little longer: anything beyond `want` would be a duplicate
        end = time.monotonic() + 3
        while time.monotonic() < end:
            for m in c.consume(1000, timeout=0.5):
                if m.error() is None and m.value() is not None:
                    got.append(codec.decode(m.value()))
    finally:
        c.close()
    return got


def bar_event(sym: str, open_ns: int, o: str, h: str, lo: str, c: str, v: int) -> dict[str, Any]:
    return {
        "T": "b",
        "S": sym,
        "o": Decimal(o),
        "h": Decimal(h),
        "l": Decimal(lo),
        "c": Decimal(c),
        "v": v,
        "n": 12,
        "vw": Decimal(c),
        "t": open_ns,
    }


def trade_for(sim: AlpacaSimulator, sym: str) -> dict[str, Any]:
    return next(e for e in iter(lambda: sim.make_event(sym), None) if e["T"] == "t")


@pytest.mark.timeout(420)
def test_simulator_to_redis_and_nats_exactly_once(
    kafka_bootstrap: str,
    redis_url: str,
    nats_url: str,
    tmp_path: Path,
    procs: list[Proc],  # noqa: F811
) -> None:
    import redis

    prefix = unique_name("e2e") + "."
    kp = unique_name("e2ek") + ":"
    stream_name = unique_name("E2E").replace("-", "_").replace(".", "_").upper()
    subj = unique_name("e2es").replace(".", "_") + "."
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "TICKWIRE_LOG_LEVEL": "INFO"}

    sim = AlpacaSimulator(mode="manual", symbols=["AAPL", "SPY", "MSFT"], seed=11)
    sim.start()
    try:
        ingest = Proc(
            [
                TICKWIRE,
                "ingest",
                "alpaca",
                "--feed",
                "stocks",
                "--url",
                sim.url + "/v2/iex",
                "--topic-prefix",
                prefix,
                "--metrics-port",
                "0",
            ],
            tmp_path / "ingest.log",
            {**env, "ALPACA_SYMBOLS": "AAPL,SPY", "ALPACA_STOCK_CHANNELS": "trades,quotes,bars"},
        ).start()
        procs.append(ingest)
        normalizer = Proc(
            [
                TICKWIRE,
                "normalize",
                "--topic-prefix",
                prefix,
                "--vendors",
                "alpaca",
                "--create-topics",
                "--metrics-port",
                "0",
            ],
            tmp_path / "normalize.log",
            {**env, "NORMALIZER_DATA_DIR": str(tmp_path / "norm")},
        )
        wait_for(
            lambda: bool(sim.connections) and "trades:AAPL" in sim.connections[0].subscriptions,
            60,
            what="producer subscribed",
        )
        # --create-topics makes the canonical topics before the bridges subscribe to them
        procs.append(normalizer.start())
        r = redis.Redis.from_url(redis_url)
        pubsub = r.pubsub()
        pubsub.psubscribe(f"{kp}market_trades:*", f"{kp}market_data:*")
        redis_args = [
            "--topic-prefix",
            prefix,
            "--key-prefix",
            kp,
            "--metrics-port",
            "0",
            "--redis-url",
            redis_url,
            "--bootstrap",
            kafka_bootstrap,
        ]
        nats_args = [
            "--topic-prefix",
            prefix,
            "--stream",
            stream_name,
            "--subject-prefix",
            subj,
            "--metrics-port",
            "0",
            "--nats-url",
            nats_url,
            "--bootstrap",
            kafka_bootstrap,
        ]
        wait_for(
            lambda: _topic_exists(kafka_bootstrap, prefix + "stock_trades_realtime"),
            90,
            what="canonical topics",
        )
        procs.append(bridge_proc("redis", redis_args, tmp_path / "bridge-redis.log", env).start())
        procs.append(bridge_proc("nats", nats_args, tmp_path / "bridge-nats.log", env).start())

        # --- the session: trades, quotes, bars for AAPL and SPY (MSFT is not subscribed yet)
        t_bar = (time.time_ns() // 60_000_000_000) * 60_000_000_000
        for i in range(200):
            sim.publish([sim.make_event("AAPL" if i % 3 else "SPY")])
        sim.publish(
            [
                bar_event("AAPL", t_bar, "150.1", "150.9", "149.8", "150.25", 12_000),
                bar_event("SPY", t_bar, "470.01", "471", "469.5", "470.5", 55_000),
            ]
        )
        sim.publish([sim.make_event("MSFT")])  # not subscribed: the simulator must not send it

        # every frame sent so far (publish is synchronous); control frames yield no records
        expected = expected_records(list(sim.connections[0].sent))
        n_exp = len(expected)
        kinds = Counter(schema_name(x) for x in expected)
        assert kinds["Trade"] > 50 and kinds["Quote"] > 50 and kinds["Bar"] == 2, kinds

        canonical = [
            prefix + t for t in ("stock_trades_realtime", "stock_quotes_realtime", "stock_bars_staging")
        ]
        got = read_committed(kafka_bootstrap, canonical, n_exp, timeout=150)
        ids = Counter((schema_name(g), g.stream, g.session, g.seq, g.sub_seq) for g in got)
        assert not [k for k, n in ids.items() if n > 1], "duplicate canonical records"
        assert sorted(_identity(to_json_dict(g)) for g in got) == sorted(
            _identity(to_json_dict(e)) for e in expected
        ), "canonical records differ from the frames the simulator sent"
        assert all(prefix + topic_for(g) in canonical for g in got)
        assert not any(g.symbol == "MSFT" for g in got)

        # --- Redis: seed 000 pub/sub + seed 004 keys
        trades = [g for g in got if schema_name(g) == "Trade"]
        n_aapl = sum(1 for t in trades if t.symbol == "AAPL")
        wait_for(lambda: r.llen(f"{kp}market:AAPL:trades") == n_aapl, 60, what="market:AAPL:trades list")
        newest = max((t for t in trades if t.symbol == "AAPL"), key=lambda t: (t.ts_event, t.seq))
        head = json.loads(r.lindex(f"{kp}market:AAPL:trades", 0) or b"{}")
        assert head["symbol"] == "AAPL" and head["tickType"] == "trade"
        assert Decimal(str(head["price"])) == Decimal(newest.price).scaleb(-9)
        assert 0 < r.ttl(f"{kp}market:AAPL:trades") <= 3600
        bar1 = json.loads(r.lindex(f"{kp}market:AAPL:bars:1min", 0) or b"{}")
        assert bar1["open"] == 150.1 and bar1["close"] == 150.25 and bar1["timeframe"] == "1m"
        ticker = json.loads(r.get(f"{kp}market:SPY:ticker") or b"{}")
        assert ticker["symbol"] == "SPY" and ticker["ask"] >= ticker["bid"] > 0
        published: Counter[str] = Counter()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(published.values()) < len(trades) + 2:
            m = pubsub.get_message(timeout=0.5)
            if m and m["type"] == "pmessage":
                published[m["channel"].decode().removeprefix(kp).split(":")[0]] += 1
        assert published == {"market_trades": len(trades), "market_data": 2}

        # --- NATS JetStream: one message per canonical record, on the seed's subjects
        subjects = asyncio.run(_jetstream_subjects(nats_url, stream_name, n_exp))
        assert sum(subjects.values()) == n_exp
        assert subjects == {
            f"{subj}market.stocks.trades": kinds["Trade"],
            f"{subj}market.stocks.quotes": kinds["Quote"],
            f"{subj}market.stocks.bars": 2,
        }, subjects

        # --- both bridges' committed offsets reach the end of the (transactional) canonical topics: the
        # holes that transaction markers leave in the offsets must not stall commits.
        for group in ("tickwire-bridge-redis", "tickwire-bridge-nats"):
            wait_for(
                lambda g=prefix + group: (
                    (lag := group_lag(kafka_bootstrap, g, canonical)) is not None
                    and lag <= 3 * len(canonical)
                ),
                60,
                what=f"{group} commits reach the end",
            )

        # --- legacy control plane -> control.subscriptions -> running producer -> Redis
        conns_before = len(sim.connections)
        r.publish(
            f"{kp}system:subscription_updates",
            json.dumps({"action": "subscribe", "type": "stock", "symbols": ["MSFT"]}),
        )
        wait_for(lambda: "trades:MSFT" in sim.connections[-1].subscriptions, 60, what="MSFT subscribed live")
        assert len(sim.connections) == conns_before, "the producer reconnected instead of subscribing live"
        assert r.sismember(f"{kp}active_subscriptions:stock", "MSFT")
        sim.publish([trade_for(sim, "MSFT")])
        wait_for(lambda: r.llen(f"{kp}market:MSFT:trades") == 1, 90, what="MSFT trade in Redis")
        pubsub.close()
        assert ingest.alive() and normalizer.alive()
    finally:
        for p in reversed(procs):
            p.stop()
        sim.stop()
        asyncio.run(_delete_stream(nats_url, stream_name))


def _topic_exists(bootstrap: str, topic: str) -> bool:
    from confluent_kafka.admin import AdminClient

    return topic in AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5).topics


async def _jetstream_subjects(url: str, stream: str, want: int) -> Counter[str]:
    import nats

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                info = await js.stream_info(stream)
                if info.state.messages >= want:
                    break
            except Exception:  # the bridge creates the stream at start
                pass
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)  # anything more would be a duplicate
        sub = await js.pull_subscribe(">", durable=None, stream=stream)
        got: Counter[str] = Counter()
        while True:
            try:
                msgs = await sub.fetch(1000, timeout=2)
            except Exception:  # fetch timeout: drained
                break
            for m in msgs:
                got[m.subject] += 1
        return got
    finally:
        await nc.close()


async def _delete_stream(url: str, stream: str) -> None:
    import nats

    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(stream)
    except Exception:  # already gone
        pass
    finally:
        await nc.close()
