"""Redis shapes of the analytics records (seed 004): payloads against values computed here from the raw
bodies (Decimal arithmetic on the vendor's text), and the commands one record adds to a batch script."""

from __future__ import annotations

import asyncio
import json
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from tickwire.bridges import redis_analytics as ra
from tickwire.bridges.config import RedisBridgeSettings
from tickwire.bridges.redis_idem import Script
from tickwire.contract.envelope import Envelope
from tickwire.contract.records import NewsSentiment, OptionChain
from tickwire.recording import read
from tickwire.vendors.alphavantage.parser import PARSER

SESSION = Path(__file__).resolve().parents[1] / "fixtures" / "alphavantage" / "session.txt"
TS = 1_765_917_000_000_000_000
Q4 = Decimal("0.0001")


def _bodies() -> list[tuple[str, bytes]]:
    return [(e.url, e.payload) for e in read(SESSION) if e.kind == "rest"]


def _parse(url: str, payload: bytes) -> list[Any]:
    env = Envelope("alphavantage", "rest.query?" + url.split("?", 1)[1], 1, 1, TS, "json")
    return list(PARSER.parse(payload, env, PARSER.new_state()).records)


def _first(fn: str) -> tuple[dict[str, Any], Any]:
    url, payload = next((u, p) for u, p in _bodies() if f"function={fn}&" in u)
    return json.loads(payload, parse_float=Decimal), _parse(url, payload)


def test_chain_payloads_match_the_rows() -> None:
    doc, recs = _first("REALTIME_OPTIONS")
    chain: OptionChain = recs[0]
    rows = doc["data"]
    out = ra.chain_payloads(chain)
    calls = json.loads(out["calls"], parse_float=Decimal)
    puts = json.loads(out["puts"], parse_float=Decimal)
    assert [c["contract_id"] for c in calls] == [r["contractID"] for r in rows if r["type"] == "call"]
    assert [p["contract_id"] for p in puts] == [r["contractID"] for r in rows if r["type"] == "put"]
    r0, c0 = rows[0], calls[0]
    for f in ("strike", "last", "mark", "bid", "ask", "bid_size", "ask_size", "volume", "open_interest"):
        assert Decimal(str(c0[f])) == Decimal(r0[f]), f
    assert (c0["expiration"], c0["type"], c0["date"]) == (r0["expiration"], "call", r0["date"])
    full = json.loads(out["chain"], parse_float=Decimal)
    assert set(full["by_contract"]) == {r["contractID"] for r in rows}
    # metrics computed from the raw rows
    vol = {t: sum(int(r["volume"]) for r in rows if r["type"] == t) for t in ("call", "put")}
    oi = {t: sum(int(r["open_interest"]) for r in rows if r["type"] == t) for t in ("call", "put")}
    greeks = [r for r in rows if "delta" in r]
    m = full["metrics"]
    assert (m["total_contracts"], m["calls"], m["puts"]) == (len(rows), len(calls), len(puts))
    assert (m["call_volume"], m["put_volume"]) == (vol["call"], vol["put"])
    assert Decimal(str(m["put_call_volume_ratio"])) == (Decimal(vol["put"]) / vol["call"]).quantize(
        Q4, ROUND_HALF_EVEN
    )
    assert Decimal(str(m["put_call_oi_ratio"])) == (Decimal(oi["put"]) / oi["call"]).quantize(
        Q4, ROUND_HALF_EVEN
    )
    assert m["with_greeks"] == len(greeks)
    exps = sorted({r["expiration"] for r in rows})
    assert list(full["expirations"]) == exps
    e0 = full["expirations"][exps[0]]
    in0 = [r for r in rows if r["expiration"] == exps[0]]
    assert e0["contracts"] == len(in0)
    assert Decimal(str(e0["min_strike"])) == min(Decimal(r["strike"]) for r in in0)
    assert Decimal(str(e0["max_strike"])) == max(Decimal(r["strike"]) for r in in0)
    mon = json.loads(out["monitoring"], parse_float=Decimal)
    assert (mon["chain_size"], mon["with_greeks"], mon["missing_greeks"]) == (
        len(rows),
        len(greeks),
        len(rows) - len(greeks),
    )
    assert mon["greeks_coverage"] == (Decimal(len(greeks)) / len(rows)).quantize(Q4, ROUND_HALF_EVEN)
    assert mon["status"] == "ok" and mon["timestamp"] == "2025-12-16T20:30:00.000Z" and mon["ts_ns"] == TS
    g = json.loads(out[f"greeks:{greeks[0]['contractID']}"], parse_float=Decimal)
    for f in ("implied_volatility", "delta", "gamma", "theta", "vega", "rho"):
        assert g[f] == Decimal(greeks[0][f]), f
    missing = next(r for r in rows if "delta" not in r)
    assert f"greeks:{missing['contractID']}" not in out
    assert "delta" not in full["by_contract"][missing["contractID"]]  # absent, never null or NaN
    assert b"NaN" not in out["chain"] and b"null" not in out["chain"]


def test_sentiment_payloads_aggregates() -> None:
    doc, recs = _first("NEWS_SENTIMENT")
    news: NewsSentiment = recs[0]
    feed = doc["feed"]
    sent_raw, mon_raw = ra.sentiment_payloads(news)
    sent = json.loads(sent_raw, parse_float=Decimal)
    mon = json.loads(mon_raw, parse_float=Decimal)
    assert sent["article_count"] == len(feed) == 3
    assert [a["url"] for a in sent["feed"]] == [a["url"] for a in feed]
    assert sent["feed"][0]["authors"] == feed[0]["authors"]
    scores = [a["overall_sentiment_score"] for a in feed]
    q9 = Decimal("1e-9")
    assert sent["averages"]["overall_sentiment_score"] == (sum(scores) / len(scores)).quantize(
        q9, ROUND_HALF_EVEN
    )
    mine = [t for a in feed for t in a["ticker_sentiment"] if t["ticker"] == "AAPL"]
    avg_t = sum(Decimal(t["ticker_sentiment_score"]) for t in mine) / len(mine)
    assert sent["averages"]["ticker_sentiment_score"] == avg_t.quantize(q9, ROUND_HALF_EVEN)
    labels: dict[str, int] = {}
    for a in feed:
        labels[a["overall_sentiment_label"]] = labels.get(a["overall_sentiment_label"], 0) + 1
    assert sent["distribution"] == labels
    pub = [a.time_published for a in news.articles]
    assert Decimal(str(sent["article_age"]["newest_s"])) == Decimal(TS - max(pub)) / 10**9
    assert Decimal(str(sent["article_age"]["oldest_s"])) == Decimal(TS - min(pub)) / 10**9
    assert mon["article_count"] == 3 and mon["avg_sentiment"] == sent["averages"]["overall_sentiment_score"]
    sources: dict[str, int] = {}
    for a in feed:
        sources[a["source"]] = sources.get(a["source"], 0) + 1
    assert mon["sources"] == sources


def test_technical_payload_is_the_point() -> None:
    doc, recs = _first("MACD")
    newest = recs[-1]
    out = json.loads(ra.technical_payload(newest), parse_float=Decimal)
    series = doc["Technical Analysis: MACD"]
    latest = max(series)
    assert out["values"] == {k: Decimal(v) for k, v in series[latest].items()}
    assert (out["indicator"], out["interval"], out["timestamp"]) == (
        "MACD",
        "daily",
        "2025-12-16T05:00:00.000Z",
    )


class _Redis:
    """Stands in for the one GET the chain writer does (the index of greeks keys); no other call."""

    def __init__(self, index: bytes | None) -> None:
        self.index = index
        self.gets: list[str] = []

    async def get(self, key: str) -> bytes | None:
        self.gets.append(key)
        return self.index


def _write(r: Any, sc: Script, rec: Any) -> bool:
    s = RedisBridgeSettings(key_prefix="p:", ttl_options_s=11, ttl_greeks_s=22)
    return asyncio.run(ra.write(r, sc, s, rec))


def test_write_commands_and_empty_chain_clears_keys() -> None:
    _, recs = _first("REALTIME_OPTIONS")
    chain: OptionChain = recs[0]
    with_g = sorted(c.contract_id for c in chain.contracts if ra.has_greeks(c))
    r = _Redis(json.dumps(["GONE1", *with_g]).encode())
    sc = Script("v")
    assert _write(r, sc, chain)
    cmds = [c for c in sc.cmds]
    assert ("DEL", "p:options:IBM:GONE1:greeks") in cmds  # left the chain: its greeks key goes
    sets = {c[1]: c for c in cmds if c[0] == "SET"}
    for name in ("calls", "puts", "chain"):
        assert sets[f"p:options:IBM:{name}"][3:] == ("EX", 11)
    assert sets["p:monitoring:options:IBM"][3:] == ("EX", 11)
    assert {k for k in sets if k.endswith(":greeks")} == {f"p:options:IBM:{cid}:greeks" for cid in with_g}
    assert sets[f"p:options:IBM:{with_g[0]}:greeks"][3:] == ("EX", 22)
    # Empty chain in the SAME batch: previous contracts come from the batch, not Redis again.
    empty = OptionChain(**{**{f: getattr(chain, f) for f in chain.__struct_fields__}, "contracts": ()})
    assert _write(r, sc, empty)
    assert r.gets == ["p:tickwire:options:IBM:contracts"]
    tail = sc.cmds[len(cmds) :]
    deleted = {k for c in tail if c[0] == "DEL" for k in c[1:]}
    assert {f"p:options:IBM:{cid}:greeks" for cid in with_g} <= deleted
    assert {"p:options:IBM:calls", "p:options:IBM:puts", "p:options:IBM:chain"} <= deleted
    mon = next(c for c in tail if c[0] == "SET" and c[1] == "p:monitoring:options:IBM")
    assert json.loads(mon[2])["status"] == "empty" and json.loads(mon[2])["chain_size"] == 0


def test_historical_chain_and_other_records() -> None:
    _, recs = _first("HISTORICAL_OPTIONS")
    sc = Script("v")
    assert _write(_Redis(None), sc, recs[0]) and sc.cmds == []  # historical chains have no Redis surface
    _, news = _first("NEWS_SENTIMENT")
    assert _write(_Redis(None), sc, news[0])
    assert [c[1] for c in sc.cmds] == ["p:sentiment:AAPL", "p:monitoring:sentiment:AAPL"]
    assert not _write(_Redis(None), Script("v"), object())
