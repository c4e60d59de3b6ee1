"""Alpha Vantage end to end, as separate processes: simulator -> `tickwire ingest alphavantage` (the poller)
-> alphavantage.raw -> `tickwire normalize` -> option_chains_snapshot / news_sentiment / technical_indicators
-> `tickwire bridge redis` -> seed 004's Redis keys.

Expected values are computed here from the simulator's data (``sim_data``, the bodies it serves) with
Decimal arithmetic on the served text, not with the parser or the bridge's shapes: chain membership and
metrics, per-contract greeks, greeks coverage and ``missing_greeks``, sentiment averages and distribution,
the newest indicator point. Then an empty chain (simulator fault) clears the chain keys and the greeks
keys, and the full chain coming back restores them.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from tests.helpers import unique_name, wait_for
from tests.integration.test_bridge_helpers import TICKWIRE, Proc, bridge_proc, procs  # noqa: F401
from tickwire.vendors.alphavantage import sim_data
from tickwire.vendors.alphavantage.simulator import AlphaVantageSimulator

pytestmark = pytest.mark.integration

Q4, Q9 = Decimal("0.0001"), Decimal("1e-9")
GREEKS = ("implied_volatility", "delta", "gamma", "theta", "vega", "rho")


def _served(obj: Any) -> Any:
    """The body as a client reads the served JSON text: numbers as exact Decimals."""
    return json.loads(json.dumps(obj), parse_float=Decimal)


def _get(r: redis.Redis, key: str) -> Any:
    raw = r.get(key)
    return None if raw is None else json.loads(raw, parse_float=Decimal)


def _topic_exists(bootstrap: str, topic: str) -> bool:
    from confluent_kafka.admin import AdminClient

    return topic in AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5).topics


def _check_chain(r: redis.Redis, kp: str, rows: list[dict[str, Any]]) -> None:
    calls, puts = _get(r, f"{kp}options:IBM:calls"), _get(r, f"{kp}options:IBM:puts")
    assert [c["contract_id"] for c in calls] == [x["contractID"] for x in rows if x["type"] == "call"]
    assert [p["contract_id"] for p in puts] == [x["contractID"] for x in rows if x["type"] == "put"]
    chain = _get(r, f"{kp}options:IBM:chain")
    assert set(chain["by_contract"]) == {x["contractID"] for x in rows}
    for x in rows:
        c = chain["by_contract"][x["contractID"]]
        for f in ("strike", "bid", "ask", "mark", "last", "volume", "open_interest", *GREEKS):
            assert (f in c) == (f in x), (x["contractID"], f)
            if f in x:
                assert Decimal(str(c[f])) == Decimal(x[f]), (x["contractID"], f)
    vol = {t: sum(int(x["volume"]) for x in rows if x["type"] == t) for t in ("call", "put")}
    m = chain["metrics"]
    assert (m["total_contracts"], m["calls"], m["puts"]) == (len(rows), len(calls), len(puts))
    assert m["put_call_volume_ratio"] == (Decimal(vol["put"]) / vol["call"]).quantize(Q4, ROUND_HALF_EVEN)
    assert m["expirations"] == len({x["expiration"] for x in rows})
    with_g = [x for x in rows if "delta" in x]
    mon = _get(r, f"{kp}monitoring:options:IBM")
    assert (mon["status"], mon["chain_size"], mon["with_greeks"]) == ("ok", len(rows), len(with_g))
    assert mon["missing_greeks"] == len(rows) - len(with_g) > 0
    assert mon["greeks_coverage"] == (Decimal(len(with_g)) / len(rows)).quantize(Q4, ROUND_HALF_EVEN)
    for x in with_g:
        g = _get(r, f"{kp}options:IBM:{x['contractID']}:greeks")
        assert {f: g[f] for f in GREEKS} == {f: Decimal(x[f]) for f in GREEKS}, x["contractID"]
        assert 0 < r.ttl(f"{kp}options:IBM:{x['contractID']}:greeks") <= 300
    for x in rows:
        if "delta" not in x:
            assert r.exists(f"{kp}options:IBM:{x['contractID']}:greeks") == 0


def _check_sentiment(r: redis.Redis, kp: str, feed: list[dict[str, Any]]) -> None:
    sent = _get(r, f"{kp}sentiment:AAPL")
    assert [a["url"] for a in sent["feed"]] == [a["url"] for a in feed] and sent["article_count"] == len(feed)
    scores = [a["overall_sentiment_score"] for a in feed]
    avg = (sum(scores) / len(scores)).quantize(Q9, ROUND_HALF_EVEN)
    assert sent["averages"]["overall_sentiment_score"] == avg
    mine = [Decimal(t["ticker_sentiment_score"]) for a in feed for t in a["ticker_sentiment"]]
    assert sent["averages"]["ticker_sentiment_score"] == (sum(mine) / len(mine)).quantize(Q9, ROUND_HALF_EVEN)
    dist: dict[str, int] = {}
    for a in feed:
        dist[a["overall_sentiment_label"]] = dist.get(a["overall_sentiment_label"], 0) + 1
    assert sent["distribution"] == dist
    eastern = ZoneInfo("US/Eastern")
    pub = [
        int(dt.datetime.strptime(a["time_published"], "%Y%m%dT%H%M%S").replace(tzinfo=eastern).timestamp())
        for a in feed
    ]
    # ages at the answer time: the ordering of articles fixes newest/oldest; the spread is exact
    age = sent["article_age"]
    assert Decimal(str(age["oldest_s"])) - Decimal(str(age["newest_s"])) == max(pub) - min(pub)
    mon = _get(r, f"{kp}monitoring:sentiment:AAPL")
    assert (mon["article_count"], mon["avg_sentiment"]) == (len(feed), avg)


def _check_technical(r: redis.Redis, kp: str, body: dict[str, Any], indicator: str) -> None:
    got = _get(r, f"{kp}technicals:IBM:{indicator}")
    points = body[f"Technical Analysis: {indicator}"]
    newest = max(points)
    t = dt.datetime.fromisoformat(newest).replace(tzinfo=ZoneInfo("US/Eastern")).astimezone(dt.UTC)
    assert got["timestamp"] == t.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert got["values"] == {k: Decimal(v) for k, v in points[newest].items()}


@pytest.mark.timeout(120)
def test_simulator_to_redis_surfaces(
    kafka_bootstrap: str,
    redis_url: str,
    tmp_path: Path,
    procs: list[Proc],  # noqa: F811
) -> None:
    t_start = time.monotonic()
    prefix = unique_name("e2eav") + "."
    kp = unique_name("e2eav") + ":"
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "TICKWIRE_LOG_LEVEL": "INFO"}
    sim = AlphaVantageSimulator(seed=11, limit=600, window_s=60.0)
    sim.start()
    r = redis.Redis.from_url(redis_url)
    try:
        norm = [
            TICKWIRE,
            "normalize",
            "--topic-prefix",
            prefix,
            "--vendors",
            "alphavantage",
            "--create-topics",
        ]
        norm_env = {**env, "NORMALIZER_DATA_DIR": str(tmp_path / "n")}
        procs.append(Proc([*norm, "--metrics-port", "0"], tmp_path / "normalize.log", norm_env).start())
        wait_for(lambda: _topic_exists(kafka_bootstrap, prefix + "technical_indicators"), 30, what="topics")
        bridge_args = ["--topic-prefix", prefix, "--key-prefix", kp, "--metrics-port", "0"]
        bridge_args += ["--redis-url", redis_url, "--bootstrap", kafka_bootstrap]
        procs.append(bridge_proc("redis", bridge_args, tmp_path / "bridge-redis.log", env).start())
        ingest = [TICKWIRE, "ingest", "alphavantage", "--url", f"{sim.http_url}/query"]
        ingest += ["--topic-prefix", prefix, "--no-control", "--metrics-port", "0"]
        ingest_env = {
            **env,
            "ALPHAVANTAGE_API_KEY": "e2e-key",
            "ALPHAVANTAGE_SYMBOLS": "IBM,AAPL",
            "ALPHAVANTAGE_OPTIONS_INTERVAL_S": "1",
            "ALPHAVANTAGE_SENTIMENT_INTERVAL_S": "30",
            "ALPHAVANTAGE_TECHNICALS_INTERVAL_S": "30",
        }
        procs.append(Proc(ingest, tmp_path / "ingest.log", ingest_env).start())

        rows = _served(sim_data.realtime_options(sim.seed, "IBM", sim.asof.date(), greeks=True))["data"]
        feed = _served(sim_data.news_sentiment(sim.seed, "AAPL", sim.asof, 50))["feed"]
        tech = {
            "RSI": {"interval": "daily", "time_period": "14", "series_type": "close"},
            "MACD": {"interval": "daily", "series_type": "close"},
            "BBANDS": {"interval": "daily", "time_period": "20", "series_type": "close"},
            "ATR": {"interval": "daily", "time_period": "14"},
        }
        keys = [f"{kp}options:IBM:chain", f"{kp}sentiment:AAPL"]
        keys += [f"{kp}technicals:IBM:{ind}" for ind in tech]
        wait_for(lambda: all(r.exists(k) for k in keys), 60, 0.2, what="every Redis surface written")
        _check_chain(r, kp, rows)
        _check_sentiment(r, kp, feed)
        for ind, params in tech.items():
            _check_technical(
                r, kp, sim_data.technical(sim.seed, ind, {"symbol": "IBM", **params}, sim.asof), ind
            )

        # An empty chain clears the chain keys and every greeks key; the full chain brings them back.
        greeks_keys = [f"{kp}options:IBM:{x['contractID']}:greeks" for x in rows if "delta" in x]
        sim.add_fault("empty_chain", count=100_000, function="REALTIME_OPTIONS", symbol="IBM")

        def cleared() -> bool:
            mon = _get(r, f"{kp}monitoring:options:IBM") or {}
            gone = not any(r.exists(f"{kp}options:IBM:{n}") for n in ("calls", "puts", "chain"))
            return mon.get("status") == "empty" and gone and r.exists(*greeks_keys) == 0

        wait_for(cleared, 20, 0.1, what="empty chain cleared the keys")
        assert _get(r, f"{kp}monitoring:options:IBM")["chain_size"] == 0
        sim.clear_faults()
        wait_for(lambda: r.exists(*greeks_keys) == len(greeks_keys), 20, 0.1, what="chain back")
        _check_chain(r, kp, rows)
        # The poller's heartbeats -> the status keys its registry row declares.
        status = [f"{kp}monitoring:alpha_vantage:metrics", f"{kp}heartbeat:alpha_vantage"]
        wait_for(lambda: r.exists(*status) == 2, 20, 0.2, what="status keys")
        hb = _get(r, status[1])
        assert (hb["component"], hb["status"]) == ("ingest.alphavantage", "ok")
    finally:
        sim.stop()
        for k in r.scan_iter(match=f"{kp}*", count=1000):
            r.delete(k)
    print(f"e2e alphavantage: {time.monotonic() - t_start:.1f} s")
