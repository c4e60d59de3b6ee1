"""Redis bridge against real Kafka + Redis: seed key/channel names, JSON, TTLs, DLQ, restart, outage."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.helpers import unique_name, wait_for
from tests.integration.test_bridge_helpers import (
    Proc,
    bar,
    book,
    bridge_proc,
    consume_all,
    create_topics,
    private_redis,
    procs,
    produce,
    quote,
    trade,
)
from tickwire.bridges import shapes
from tickwire.infra.process import free_port

__all__ = ["procs"]

pytestmark = pytest.mark.integration

TOPICS = ["stock_trades_realtime", "stock_quotes_realtime", "stock_bars_staging", "crypto_book_realtime"]


def _setup(kafka: str) -> str:
    prefix = unique_name("rb") + "."
    create_topics(kafka, [prefix + t for t in TOPICS] + [prefix + "bridge.redis.dlq"])
    return prefix


def _bridge(kafka: str, redis_url: str, prefix: str, key_prefix: str, tmp: Path, *extra: str) -> Proc:
    args = [
        "--bootstrap",
        kafka,
        "--redis-url",
        redis_url,
        "--topic-prefix",
        prefix,
        "--key-prefix",
        key_prefix,
    ]
    args += ["--topics", ",".join(TOPICS), *extra]
    return bridge_proc("redis", args, tmp / f"bridge-{key_prefix}.log")


def _state(r: Any, key_prefix: str) -> dict[str, Any]:
    """Every legacy data key under the prefix with its value (prefix stripped) -- no TTLs, no bookkeeping."""
    out: dict[str, Any] = {}
    for raw in r.scan_iter(match=key_prefix + "*", count=1000):
        key = raw.decode()[len(key_prefix) :]
        if key.startswith(("heartbeat:", "monitoring:", "tickwire:bridge:")):
            continue
        kind = r.type(raw).decode()
        if kind == "list":
            out[key] = r.lrange(raw, 0, -1)
        elif kind == "hash":
            out[key] = r.hgetall(raw)
        else:
            out[key] = r.get(raw)
    return out


def _metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def test_seed_keys_channels_json_ttls_and_dlq(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    prefix = _setup(kafka_bootstrap)
    kp = unique_name("k") + ":"
    r: Any = redis.Redis.from_url(redis_url)
    ps = r.pubsub()
    ps.subscribe(f"{kp}market_trades:AAPL", f"{kp}market_data:AAPL")
    trades = [trade(i) for i in range(5)]
    bars = [bar(0), bar(1), bar(1, correction=True), bar(0, "5s")]
    books = [
        book(0, True, [("100", "1"), ("99", "2")], [("101", "2"), ("102", "1")]),
        book(1, False, [("100", "0"), ("99.5", "3")], [("101", "1.5")]),
    ]
    produce(
        kafka_bootstrap,
        prefix,
        [*trades, quote(0), quote(1), *bars, *books],
        raw=[("stock_trades_realtime", b"\x00\x00\x00\x00\x63not-avro"), ("stock_bars_staging", b"garbage")],
    )
    procs.append(_bridge(kafka_bootstrap, redis_url, prefix, kp, tmp_path).start())

    # market:{symbol}:trades -- newest first, exact entries, seed TTL
    tkey = f"{kp}market:AAPL:trades"
    wait_for(lambda: r.llen(tkey) == 5, 60, what="trades list")
    assert r.lrange(tkey, 0, -1) == [shapes.trade_list_entry(t) for t in reversed(trades)]
    assert 3500 < r.ttl(tkey) <= 3600

    # pub/sub: NormalizedTrade on market_trades:{symbol}, NormalizedBar (1m only) on market_data:{symbol}
    got: dict[str, list[bytes]] = {}

    def drain() -> bool:
        m = ps.get_message(ignore_subscribe_messages=True, timeout=0.2)
        while m is not None:
            got.setdefault(m["channel"].decode(), []).append(m["data"])
            m = ps.get_message(ignore_subscribe_messages=True, timeout=0.05)
        return len(got.get(f"{kp}market_data:AAPL", [])) == 3

    wait_for(drain, 30, what="pub/sub messages")
    assert got[f"{kp}market_trades:AAPL"] == [shapes.trade_message(t) for t in trades]
    assert got[f"{kp}market_trades:AAPL"][0] == (
        b'{"symbol":"AAPL","price":100,"size":10,"timestamp":"2024-01-02T14:30:00.000Z","tickType":"trade"}'
    )
    assert got[f"{kp}market_data:AAPL"] == [shapes.bar_message(b) for b in bars[:3]]
    assert json.loads(got[f"{kp}market_data:AAPL"][0]) == {
        "symbol": "AAPL",
        "timeframe": "1m",
        "open": 100,
        "high": 101.5,
        "low": 99.25,
        "close": 100.75,
        "volume": 1234.5,
        "timestamp": "2024-01-02T14:30:00.000Z",
    }

    # bars lists: the correction replaced the bar with the same open time; 5s bars on their own key
    assert r.lrange(f"{kp}market:AAPL:bars:1min", 0, -1) == [
        shapes.bar_message(bars[2]),
        shapes.bar_message(bars[0]),
    ]
    assert r.lrange(f"{kp}market:AAPL:bars:5s", 0, -1) == [shapes.bar_message(bars[3])]
    assert 86000 < r.ttl(f"{kp}market:AAPL:bars:1min") <= 86400

    # ticker: last trade + latest quote, exact numbers
    tick = json.loads(r.get(f"{kp}market:AAPL:ticker") or b"{}")
    assert {k: tick[k] for k in ("bid", "ask", "mid", "spread", "spread_bps", "last")} == {
        "bid": 100.0,
        "ask": 100.02,
        "mid": 100.01,
        "spread": 0.02,
        "spread_bps": 1.9998,
        "last": 100.04,
    }
    assert tick["timestamp"] == "2024-01-02T14:30:00.004Z"
    assert 200 < r.ttl(f"{kp}market:AAPL:ticker") <= 300

    # book: snapshot + diff applied, best first
    bk = json.loads(r.get(f"{kp}market:BTC/USD:book") or b"{}")
    assert bk["bids"] == [{"price": 99.5, "size": 3}, {"price": 99, "size": 2}]
    assert bk["asks"] == [{"price": 101, "size": 1.5}, {"price": 102, "size": 1}]
    assert 200 < r.ttl(f"{kp}market:BTC/USD:book") <= 300

    # heartbeat:{component}
    hb_key = f"{kp}heartbeat:{prefix}tickwire-bridge-redis"
    hb = wait_for(lambda: json.loads(r.get(hb_key) or b"{}"), 20, what="heartbeat")
    assert hb["component"] == prefix + "tickwire-bridge-redis" and hb["status"] == "ok"
    wait_for(lambda: json.loads(r.get(hb_key) or b"{}")["records_written"] == 13, 20, what="heartbeat count")
    assert 0 < r.ttl(f"{kp}heartbeat:{prefix}tickwire-bridge-redis") <= 30

    # undecodable records -> bridge.redis.dlq with reason headers
    dlq = consume_all(kafka_bootstrap, prefix + "bridge.redis.dlq", 2)
    assert sorted(m.value() for m in dlq) == [b"\x00\x00\x00\x00\x63not-avro", b"garbage"]
    for m in dlq:
        h = dict(m.headers())
        assert h["tw-src-topic"].decode() in (prefix + "stock_trades_realtime", prefix + "stock_bars_staging")
        assert h["tw-error-class"] == b"CodecError" and h["tw-error-message"]
        assert h["tw-src-partition"] == b"0" and int(h["tw-src-offset"]) >= 0
    ps.close()


def test_staleness_monitor(kafka_bootstrap: str, redis_url: str, tmp_path: Path, procs: list[Proc]) -> None:
    prefix = _setup(kafka_bootstrap)
    kp = unique_name("k") + ":"
    r = redis.Redis.from_url(redis_url)
    produce(kafka_bootstrap, prefix, [trade(0, symbol="OLD")])
    extra = ("--stale-after-s", "1", "--monitor-interval-s", "0.5", "--no-control-plane")
    procs.append(_bridge(kafka_bootstrap, redis_url, prefix, kp, tmp_path, *extra).start())
    stale: Any = wait_for(lambda: r.hget(f"{kp}monitoring:data:stale", "OLD"), 60, what="stale entry")
    assert json.loads(stale)["age_seconds"] > 1
    produce(kafka_bootstrap, prefix, [trade(1, symbol="OLD")])  # fresh again -> removed
    wait_for(lambda: r.hget(f"{kp}monitoring:data:stale", "OLD") is None, 30, what="stale entry removed")


def _workload(n: int, start: int = 0) -> list[Any]:
    out: list[Any] = []
    for i in range(start, start + n):
        out.append(trade(i, symbol=("AAPL", "MSFT")[i % 2]))
        if i % 5 == 0:
            out.append(quote(i))
        if i % 50 == 0:
            out.append(bar(i // 50))
        if i % 7 == 0:
            out.append(book(i, i % 70 == 0, [(f"{100 + i % 3}", f"{i % 4}")], [(f"{103 + i % 2}", "1")]))
    return out


def test_restart_midstream_equals_clean_run(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    prefix = _setup(kafka_bootstrap)
    r = redis.Redis.from_url(redis_url)
    kp_crash, kp_clean = unique_name("crash") + ":", unique_name("clean") + ":"
    produce(kafka_bootstrap, prefix, _workload(6000))
    small = ("--batch-max", "20", "--no-control-plane")
    crash = _bridge(kafka_bootstrap, redis_url, prefix, kp_crash, tmp_path, *small).start()
    procs.append(crash)
    clean = _bridge(
        kafka_bootstrap, redis_url, prefix, kp_clean, tmp_path, "--app-id", "clean", "--no-control-plane"
    )
    procs.append(clean.start())
    wait_for(
        lambda: r.llen(f"{kp_crash}market:AAPL:trades") >= 200,
        60,
        interval=0.01,
        what="crash bridge progress",
    )
    crash.stop(signal.SIGKILL)  # no commit of what was written since the last commit -> redelivery
    produce(kafka_bootstrap, prefix, _workload(2000, start=6000))
    port = free_port()
    procs.append(Proc([*crash.argv, "--metrics-port", str(port)], crash.log, crash.env).start())

    def done(kp: str, app: str) -> bool:
        offs = r.hgetall(f"{kp}tickwire:bridge:{prefix}{app}:offsets")
        return offs.get(f"{prefix}stock_trades_realtime:0".encode()) == b"7999"

    wait_for(
        lambda: done(kp_clean, "clean") and done(kp_crash, "tickwire-bridge-redis"), 120, what="both done"
    )
    wait_for(lambda: _state(r, kp_crash) == _state(r, kp_clean), 30, what="same final state")
    state = _state(r, kp_crash)
    entries = [json.loads(e) for e in state["market:AAPL:trades"]]
    assert len(entries) == 1000
    assert [e["ts_event_ns"] for e in entries] == sorted({e["ts_event_ns"] for e in entries}, reverse=True)
    assert entries[0]["ts_event_ns"] == trade(7998).ts_event
    assert len(state["market:AAPL:bars:1min"]) == 160
    print(
        "redelivered records skipped after restart:", _metric(port, "tickwire_bridge_records_skipped_total")
    )


def test_redis_outage_loses_nothing(kafka_bootstrap: str, tmp_path: Path, procs: list[Proc]) -> None:
    prefix = _setup(kafka_bootstrap)
    rport, mport = free_port(), free_port()
    data = tmp_path / "redis-data"
    data.mkdir()
    server = private_redis(rport, data, tmp_path / "redis.log")
    procs.append(server)
    url = f"redis://127.0.0.1:{rport}/0"
    r = redis.Redis.from_url(url)
    kp = "o:"
    produce(kafka_bootstrap, prefix, [trade(i) for i in range(100)])
    bridge = _bridge(
        kafka_bootstrap, url, prefix, kp, tmp_path, "--metrics-port", str(mport), "--no-control-plane"
    )
    procs.append(bridge.start())
    wait_for(lambda: r.llen(f"{kp}market:AAPL:trades") == 100, 60, what="first half")

    server.stop(signal.SIGTERM)  # Redis down (AOF keeps what was written, as a real restart would)
    produce(kafka_bootstrap, prefix, [trade(i) for i in range(100, 200)])
    wait_for(lambda: _metric(mport, "tickwire_bridge_errors_total") >= 2, 30, what="errors reported")
    time.sleep(8)  # stay down for a while: the bridge keeps retrying, it must not crash or skip
    assert bridge.alive()
    assert _metric(mport, "tickwire_bridge_retrying") == 1
    wait_for(lambda: _metric(mport, "tickwire_bridge_lag_seconds") > 5, 30, what="lag reported while down")

    procs.append(server.__class__(server.argv, server.log).start())
    wait_for(
        lambda: r.llen(f"{kp}market:AAPL:trades") == 200, 60, interval=0.2, what="second half after outage"
    )
    entries = [json.loads(e)["ts_event_ns"] for e in r.lrange(f"{kp}market:AAPL:trades", 0, -1)]
    assert entries == [trade(i).ts_event for i in reversed(range(200))]
    wait_for(lambda: _metric(mport, "tickwire_bridge_retrying") == 0, 10, what="retrying cleared")


def test_registry_schema_ids_decode_with_the_shared_variable(
    kafka_bootstrap: str, redis_url: str, schema_registry_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    """Issue 10 item 8: the bridge reads the normalizer's SCHEMA_REGISTRY_URL, so a registry-assigned id
    that no local table knows (a newer writer schema) is decoded and bridged, not sent to the DLQ."""
    import contextlib
    import io

    import fastavro
    from confluent_kafka import Producer

    from tickwire.contract.codec import LOCAL_IDS, avro_datum, load_schema, plain_schema
    from tickwire.contract.routing import key_for, topic_for

    prefix = _setup(kafka_bootstrap)
    kp, scratch = unique_name("k") + ":", unique_name("test.bridge-trade")

    def rest(method: str, url: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"null")

    writer = load_schema("Trade")
    writer["fields"].append({"name": "extra", "type": "string", "default": "", "doc": "test only"})
    url = f"{schema_registry_url}/subjects/{scratch}"
    try:
        # A fresh registry numbers from 1, like the local table: register scratch versions until the id is
        # one no local table knows, so a decode through the local table could not pass by coincidence.
        for n in range(len(LOCAL_IDS) + 2):
            writer["fields"][-1]["default"] = f"v{n}"
            sid = rest("POST", f"{url}/versions", {"schema": json.dumps(writer)})["id"]
            if sid not in LOCAL_IDS.values():
                break
        assert sid not in LOCAL_IDS.values()
        t = trade(0)
        buf = io.BytesIO()
        parsed = fastavro.parse_schema(plain_schema(writer), named_schemas={})
        fastavro.schemaless_writer(buf, parsed, {**avro_datum(t), "extra": "x"})
        p = Producer({"bootstrap.servers": kafka_bootstrap})
        p.produce(
            prefix + topic_for(t), value=b"\x00" + sid.to_bytes(4, "big") + buf.getvalue(), key=key_for(t)
        )
        assert p.flush(30) == 0
        bridge = _bridge(kafka_bootstrap, redis_url, prefix, kp, tmp_path, "--no-control-plane")
        bridge.env["SCHEMA_REGISTRY_URL"] = schema_registry_url
        procs.append(bridge.start())
        r: Any = redis.Redis.from_url(redis_url)
        wait_for(lambda: r.llen(f"{kp}market:AAPL:trades") == 1, 60, what="registry-encoded trade bridged")
        assert r.lrange(f"{kp}market:AAPL:trades", 0, -1) == [shapes.trade_list_entry(t)]
    finally:
        for suffix in ("", "?permanent=true"):
            with contextlib.suppress(OSError):  # urllib's HTTPError is an OSError
                rest("DELETE", f"{url}{suffix}")
