"""Redis surfaces of the analytics records (seed 004's options, sentiment and technicals keys).

Called by the Redis bridge for each fresh record of its batch (``write``); every command goes into the
batch's one atomic script, so these keys share the bridge's idempotence. Amounts are JSON number tokens
with the exact decimal text (``shapes.num``), absent values are omitted (never NaN, never null); derived
ratios and averages are exact decimals rounded half-even (ratios and coverage to 4 decimals, averages
to 1e-9). Times: ``timestamp`` ISO-8601 UTC of the answer, ``ts_ns`` its int ns.

- ``OptionChain`` (realtime chains only; historical chains stay on their topic):
  ``options:{symbol}:calls`` / ``:puts`` (JSON arrays of contracts, vendor order),
  ``options:{symbol}:chain`` (``by_contract``, ``expirations`` summary, ``metrics``),
  ``options:{symbol}:{contract_id}:greeks`` per contract with greeks, and ``monitoring:options:{symbol}``
  (``chain_size``, ``with_greeks``, ``missing_greeks``, ``greeks_coverage``). An empty chain deletes the
  calls, puts, chain and greeks keys and writes ``monitoring:options:{symbol}`` with status ``empty``.
  Greeks keys of contracts that left the chain are deleted too: the bridge keeps the chain's contract
  ids in ``tickwire:options:{symbol}:contracts`` (read once per symbol per batch).
- ``NewsSentiment``: ``sentiment:{symbol}`` (the full feed, ``averages``, ``distribution`` of overall
  labels, ``article_age`` in seconds at answer time) and ``monitoring:sentiment:{symbol}``.
- ``IndicatorPoint``: ``technicals:{symbol}:{indicator}`` = the newest point (values by name).
"""

from __future__ import annotations

import weakref
from collections import Counter
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson
import redis.asyncio as aioredis

from tickwire.bridges import shapes
from tickwire.bridges.config import RedisBridgeSettings
from tickwire.bridges.redis_idem import Script
from tickwire.contract.records import IndicatorPoint, NewsArticle, NewsSentiment, OptionChain, OptionContract

# The record types this module writes (polled analytics, not market data: no staleness tracking).
ANALYTICS = (OptionChain, NewsSentiment, IndicatorPoint)
_Q4 = Decimal("0.0001")
_GREEKS = ("implied_volatility", "delta", "gamma", "theta", "vega", "rho")
_DEL_CHUNK = 1000  # keys per DEL command (bounded Lua unpack)
_ROW = ("last", "mark", "bid", "bid_size", "ask", "ask_size", "volume", "open_interest")
# Per batch (its Script): symbol -> contract ids of the chain as this batch leaves it.
_CONTRACTS: weakref.WeakKeyDictionary[Script, dict[str, set[str]]] = weakref.WeakKeyDictionary()


def ratio(num: int, den: int) -> Decimal | None:
    """``num / den`` rounded half-even to 4 decimals; None when ``den`` is 0."""
    if den == 0:
        return None
    return (Decimal(num) / Decimal(den)).quantize(_Q4, rounding=ROUND_HALF_EVEN)


def mean_units(values: list[int]) -> int | None:
    """Mean of amounts in 1e-9 units, rounded half-even to a unit; None for no values."""
    if not values:
        return None
    return int((Decimal(sum(values)) / len(values)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _dec(d: Decimal) -> orjson.Fragment:
    return orjson.Fragment(format(d, "f"))


def _put(out: dict[str, Any], name: str, units: int | None) -> None:
    if units is not None:
        out[name] = shapes.num(units)


def contract_json(c: OptionContract) -> dict[str, Any]:
    out: dict[str, Any] = {
        "contract_id": c.contract_id,
        "symbol": c.underlying,
        "expiration": c.expiry.isoformat(),
        "strike": shapes.num(c.strike),
        "type": "call" if c.right == "C" else "put",
    }
    for f in _ROW:
        _put(out, f, getattr(c, f))
    if c.quote_date is not None:
        out["date"] = c.quote_date.isoformat()
    for f in _GREEKS:
        _put(out, f, getattr(c, f))
    return out


def has_greeks(c: OptionContract) -> bool:
    return any(getattr(c, f) is not None for f in _GREEKS)


def chain_payloads(ch: OptionChain, digits: int = 3) -> dict[str, bytes]:
    """Payloads of a non-empty chain: ``calls``, ``puts``, ``chain``, ``monitoring``, ``greeks:<id>``."""
    stamp = {"symbol": ch.symbol, "timestamp": shapes.iso_from_ns(ch.ts_event, digits), "ts_ns": ch.ts_event}
    rows = [(c, contract_json(c)) for c in ch.contracts]
    calls = [j for c, j in rows if c.right == "C"]
    puts = [j for c, j in rows if c.right == "P"]
    exps: dict[str, list[OptionContract]] = {}
    for c in ch.contracts:
        exps.setdefault(c.expiry.isoformat(), []).append(c)
    summary = {}
    for exp, cs in sorted(exps.items()):
        summary[exp] = {
            "contracts": len(cs),
            "calls": sum(1 for c in cs if c.right == "C"),
            "puts": sum(1 for c in cs if c.right == "P"),
            "min_strike": shapes.num(min(c.strike for c in cs)),
            "max_strike": shapes.num(max(c.strike for c in cs)),
            "volume": shapes.num(sum(c.volume or 0 for c in cs)),
            "open_interest": shapes.num(sum(c.open_interest or 0 for c in cs)),
        }
    with_greeks = sum(1 for c in ch.contracts if has_greeks(c))
    vol = {r: sum(c.volume or 0 for c in ch.contracts if c.right == r) for r in ("C", "P")}
    oi = {r: sum(c.open_interest or 0 for c in ch.contracts if c.right == r) for r in ("C", "P")}
    metrics: dict[str, Any] = {
        "total_contracts": len(ch.contracts),
        "calls": len(calls),
        "puts": len(puts),
        "expirations": len(exps),
        "call_volume": shapes.num(vol["C"]),
        "put_volume": shapes.num(vol["P"]),
        "call_open_interest": shapes.num(oi["C"]),
        "put_open_interest": shapes.num(oi["P"]),
        "with_greeks": with_greeks,
    }
    for name, value in (
        ("put_call_volume_ratio", ratio(vol["P"], vol["C"])),
        ("put_call_oi_ratio", ratio(oi["P"], oi["C"])),
        ("greeks_coverage", ratio(with_greeks, len(ch.contracts))),
    ):
        if value is not None:
            metrics[name] = _dec(value)
    chain = {**stamp, "by_contract": {j["contract_id"]: j for _, j in rows}, "expirations": summary}
    monitoring = {
        **stamp,
        "status": "ok",
        "chain_size": len(ch.contracts),
        "calls": len(calls),
        "puts": len(puts),
        "expirations": len(exps),
        "greeks_requested": ch.greeks_requested,
        "with_greeks": with_greeks,
        "missing_greeks": len(ch.contracts) - with_greeks,
        "greeks_coverage": metrics.get("greeks_coverage", _dec(Decimal("0.0000"))),
    }
    out = {
        "calls": orjson.dumps(calls),
        "puts": orjson.dumps(puts),
        "chain": shapes.dumps({**chain, "metrics": metrics}),
        "monitoring": shapes.dumps(monitoring),
    }
    for c, j in rows:
        if has_greeks(c):
            g = {"contract_id": c.contract_id, **stamp, **{f: j[f] for f in _GREEKS if f in j}}
            out[f"greeks:{c.contract_id}"] = shapes.dumps(g)
    return out


def empty_monitoring(ch: OptionChain, digits: int = 3) -> bytes:
    return shapes.dumps(
        {
            "symbol": ch.symbol,
            "timestamp": shapes.iso_from_ns(ch.ts_event, digits),
            "ts_ns": ch.ts_event,
            "status": "empty",
            "chain_size": 0,
            "greeks_requested": ch.greeks_requested,
            "with_greeks": 0,
            "missing_greeks": 0,
        }
    )


def article_json(a: NewsArticle, digits: int = 3) -> dict[str, Any]:
    out: dict[str, Any] = {
        "title": a.title,
        "url": a.url,
        "time_published": shapes.iso_from_ns(a.time_published, digits),
        "time_published_ns": a.time_published,
        "authors": list(a.authors),
        "summary": a.summary,
        "source": a.source,
    }
    if a.source_domain is not None:
        out["source_domain"] = a.source_domain
    if a.category is not None:
        out["category_within_source"] = a.category
    out["topics"] = [{"topic": t, "relevance_score": shapes.num(v)} for t, v in a.topics.items()]
    _put(out, "overall_sentiment_score", a.overall_score)
    if a.overall_label is not None:
        out["overall_sentiment_label"] = a.overall_label
    out["ticker_sentiment"] = [
        {
            "ticker": t.ticker,
            "relevance_score": shapes.num(t.relevance),
            "ticker_sentiment_score": shapes.num(t.score),
            "ticker_sentiment_label": t.label,
        }
        for t in a.tickers
    ]
    return out


def sentiment_payloads(n: NewsSentiment, digits: int = 3) -> tuple[bytes, bytes]:
    """(``sentiment:{symbol}``, ``monitoring:sentiment:{symbol}``)."""
    arts = n.articles
    stamp = {"symbol": n.symbol, "timestamp": shapes.iso_from_ns(n.ts_event, digits), "ts_ns": n.ts_event}
    mine = [t for a in arts for t in a.tickers if t.ticker == n.symbol]
    averages: dict[str, Any] = {}
    _put(
        averages,
        "overall_sentiment_score",
        mean_units([a.overall_score for a in arts if a.overall_score is not None]),
    )
    _put(averages, "ticker_sentiment_score", mean_units([t.score for t in mine]))
    _put(averages, "ticker_relevance_score", mean_units([t.relevance for t in mine]))
    distribution = dict(Counter(a.overall_label for a in arts if a.overall_label is not None))
    ages = [n.ts_event - a.time_published for a in arts]
    age: dict[str, Any] = {}
    if ages:
        age = {"newest_s": shapes.num(min(ages)), "oldest_s": shapes.num(max(ages))}
        _put(age, "mean_s", mean_units(ages))
    feed = {
        **stamp,
        "article_count": len(arts),
        "feed": [article_json(a, digits) for a in arts],
        "averages": averages,
        "distribution": distribution,
        "article_age": age,
    }
    monitoring = {
        **stamp,
        "status": "ok" if arts else "empty",
        "article_count": len(arts),
        "avg_sentiment": averages.get("overall_sentiment_score"),
        "sources": dict(Counter(a.source for a in arts)),
    }
    if monitoring["avg_sentiment"] is None:
        del monitoring["avg_sentiment"]
    return shapes.dumps(feed), shapes.dumps(monitoring)


def technical_payload(p: IndicatorPoint, digits: int = 3) -> bytes:
    return shapes.dumps(
        {
            "symbol": p.symbol,
            "indicator": p.indicator,
            "interval": p.interval,
            "params": dict(p.params),
            "timestamp": shapes.iso_from_ns(p.ts_event, digits),
            "ts_ns": p.ts_event,
            "values": {k: shapes.num(v) for k, v in p.values.items()},
            "updated": shapes.iso_from_ns(p.ts_recv, digits),
        }
    )


async def _known_contracts(r: aioredis.Redis, sc: Script, key: str, sym: str) -> set[str]:
    per_batch = _CONTRACTS.setdefault(sc, {})
    known = per_batch.get(sym)
    if known is None:
        raw = await r.get(key)
        known = per_batch[sym] = set(orjson.loads(raw)) if raw else set()
    return known


async def write(r: aioredis.Redis, sc: Script, s: RedisBridgeSettings, rec: Any) -> bool:
    """Add the commands of one analytics record to the batch script; False if ``rec`` is none."""
    p, d = s.key_prefix, s.timestamp_digits
    if isinstance(rec, OptionChain):
        if rec.kind != "realtime":
            return True
        sym = rec.symbol
        base = f"{p}options:{sym}"
        index = f"{p}tickwire:options:{sym}:contracts"
        known = await _known_contracts(r, sc, index, sym)
        now = {c.contract_id for c in rec.contracts if has_greeks(c)}
        gone = sorted(known - now)
        for i in range(0, len(gone), _DEL_CHUNK):
            sc.cmd("DEL", *(f"{base}:{cid}:greeks" for cid in gone[i : i + _DEL_CHUNK]))
        _CONTRACTS[sc][sym] = now
        if not rec.contracts:
            sc.cmd("DEL", f"{base}:calls", f"{base}:puts", f"{base}:chain", index)
            sc.cmd("SET", f"{p}monitoring:options:{sym}", empty_monitoring(rec, d), "EX", s.ttl_options_s)
            return True
        out = chain_payloads(rec, d)
        for name in ("calls", "puts", "chain"):
            sc.cmd("SET", f"{base}:{name}", out[name], "EX", s.ttl_options_s)
        sc.cmd("SET", f"{p}monitoring:options:{sym}", out["monitoring"], "EX", s.ttl_options_s)
        for cid in sorted(now):
            sc.cmd("SET", f"{base}:{cid}:greeks", out[f"greeks:{cid}"], "EX", s.ttl_greeks_s)
        if now:
            sc.cmd("SET", index, orjson.dumps(sorted(now)), "EX", s.ttl_greeks_s)
        else:
            sc.cmd("DEL", index)
        return True
    if isinstance(rec, NewsSentiment):
        feed, monitoring = sentiment_payloads(rec, d)
        sc.cmd("SET", f"{p}sentiment:{rec.symbol}", feed, "EX", s.ttl_sentiment_s)
        sc.cmd("SET", f"{p}monitoring:sentiment:{rec.symbol}", monitoring, "EX", s.ttl_sentiment_s)
        return True
    if isinstance(rec, IndicatorPoint):
        key = f"{p}technicals:{rec.symbol}:{rec.indicator}"
        sc.cmd("SET", key, technical_payload(rec, d), "EX", s.ttl_technicals_s)
        return True
    return False
