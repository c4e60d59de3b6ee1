"""Alpha Vantage parser: real response shapes -> canonical analytics records, values asserted field by field.

Expected values are written out from the fixture bodies (decimal text -> 1e-9 units by hand), not
recomputed with the parser's own helpers.
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from tickwire.contract.codec import Codec
from tickwire.contract.envelope import Envelope, context_header
from tickwire.contract.parser import ParseError
from tickwire.contract.records import IndicatorPoint, NewsSentiment, OptionChain
from tickwire.recording import read
from tickwire.vendors.alphavantage.parser import PARSER, AlphaVantageState

SESSION = Path(__file__).resolve().parents[1] / "fixtures" / "alphavantage" / "session.txt"
TS_RECV = 1_765_917_000_123_456_789
E9 = 10**9


def env(ctx: dict[str, str | int], seq: int = 1, stream: str = "rest.x") -> Envelope:
    return Envelope("alphavantage", stream, 5, seq, TS_RECV, "json", context=context_header(ctx)[1].decode())


def bodies() -> list[tuple[str, bytes]]:
    return [(e.url, e.payload) for e in read(SESSION) if e.kind == "rest"]


def body(function: str, *, n: int = 0) -> bytes:
    return [p for u, p in bodies() if f"function={function}&" in u][n]


def parse(payload: bytes, ctx: dict[str, str | int], state: AlphaVantageState | None = None) -> Any:
    return PARSER.parse(payload, env(ctx), state if state is not None else PARSER.new_state())


def test_realtime_chain_with_greeks_field_by_field() -> None:
    raw = body("REALTIME_OPTIONS")
    rows = json.loads(raw)["data"]
    ctx: dict[str, str | int] = {"function": "REALTIME_OPTIONS", "symbol": "IBM", "require_greeks": "true"}
    out = parse(raw, {**ctx, "http_status": 200, "outcome": "data"})
    assert not out.control and len(out.records) == 1
    ch = out.records[0]
    assert isinstance(ch, OptionChain)
    assert (ch.symbol, ch.kind, ch.greeks_requested, ch.as_of) == ("IBM", "realtime", True, None)
    assert (ch.ts_event, ch.ts_recv, ch.seq, ch.session, ch.source) == (
        TS_RECV,
        TS_RECV,
        1,
        5,
        "alphavantage",
    )
    assert len(ch.contracts) == len(rows) == 36
    first, c = rows[0], ch.contracts[0]
    # {"contractID":"IBM251219C00530000","strike":"530.00","type":"call","bid":"...", "delta":"...", ...}
    assert c.contract_id == first["contractID"] == "IBM251219C00530000"
    assert (c.underlying, c.expiry, c.right) == ("IBM", dt.date(2025, 12, 19), "C")
    assert c.strike == 530 * E9
    assert c.quote_date == dt.date(2025, 12, 16)
    for f in ("last", "mark", "bid", "ask"):
        whole, frac = first[f].split(".")
        assert getattr(c, f) == int(whole) * E9 + int(frac) * 10**7, f
    assert c.bid_size == int(first["bid_size"]) * E9 and c.open_interest == int(first["open_interest"]) * E9
    missing = [r["contractID"] for r in rows if "delta" not in r]
    assert missing, "fixture must have contracts without greeks"
    for r, k in zip(rows, ch.contracts, strict=True):
        if "delta" in r:
            sign = -1 if r["theta"].startswith("-") else 1
            whole, frac = r["theta"].lstrip("-").split(".")
            assert k.theta == sign * (int(whole) * E9 + int(frac.ljust(9, "0")))
            assert k.implied_volatility is not None and k.rho is not None
        else:
            assert (k.implied_volatility, k.delta, k.gamma, k.theta, k.vega, k.rho) == (None,) * 6
    assert [k.right for k in ch.contracts[:2]] == ["C", "P"]


def test_chain_without_greeks_and_historical_and_empty() -> None:
    ctx: dict[str, str | int] = {"function": "REALTIME_OPTIONS", "symbol": "MSFT", "require_greeks": "false"}
    ch = parse(body("REALTIME_OPTIONS", n=1), ctx).records[0]
    assert ch.symbol == "MSFT" and not ch.greeks_requested
    assert all(c.delta is None and c.implied_volatility is None for c in ch.contracts)
    hctx: dict[str, str | int] = {"function": "HISTORICAL_OPTIONS", "symbol": "IBM", "date": "2025-12-15"}
    h = parse(body("HISTORICAL_OPTIONS"), hctx).records[0]
    assert (h.kind, h.as_of, h.greeks_requested) == ("historical", dt.date(2025, 12, 15), True)
    assert all(c.delta is not None for c in h.contracts)
    e = parse(body("HISTORICAL_OPTIONS", n=1), {**hctx, "symbol": "XYZ"})
    assert not e.control and e.records[0].contracts == () and e.records[0].symbol == "XYZ"
    empty_rt = json.dumps({"endpoint": "Realtime Options", "message": "success", "data": []}).encode()
    rt = parse(empty_rt, {"function": "REALTIME_OPTIONS", "symbol": "IBM", "require_greeks": "true"})
    assert rt.records[0].contracts == () and rt.records[0].kind == "realtime"


def test_news_sentiment_exact_scores_and_times() -> None:
    raw = body("NEWS_SENTIMENT")
    feed = json.loads(raw)["feed"]
    rec = parse(raw, {"function": "NEWS_SENTIMENT", "tickers": "AAPL", "limit": "3"}).records[0]
    assert isinstance(rec, NewsSentiment) and rec.symbol == "AAPL" and len(rec.articles) == 3
    a, f = rec.articles[0], feed[0]
    assert (a.url, a.title, a.source, a.source_domain) == (
        f["url"],
        f["title"],
        f["source"],
        f["source_domain"],
    )
    # time_published is US/Eastern wall time: EST is UTC-5 in December.
    t = dt.datetime.strptime(f["time_published"], "%Y%m%dT%H%M%S") + dt.timedelta(hours=5)
    assert a.time_published == int(t.replace(tzinfo=dt.UTC).timestamp()) * E9
    # overall_sentiment_score is a JSON number: its text, exactly (never via a float).
    text = raw.split(b'"overall_sentiment_score":', 1)[1].split(b",", 1)[0].decode()
    sign = -1 if text.startswith("-") else 1
    whole, _, frac = text.lstrip("-").partition(".")
    assert a.overall_score == sign * (int(whole) * E9 + int(frac.ljust(9, "0") or 0))
    assert a.overall_label == f["overall_sentiment_label"]
    ts = f["ticker_sentiment"][0]
    assert a.tickers[0].ticker == "AAPL" and a.tickers[0].label == ts["ticker_sentiment_label"]
    assert a.tickers[0].relevance == round(int(ts["relevance_score"].replace(".", "")) * 10**3)
    assert a.topics == {"Earnings": int(f["topics"][0]["relevance_score"].replace(".", "")) * 10**3}


def test_technicals_utc_conversion_and_no_repeats() -> None:
    state = PARSER.new_state()
    raw = body("RSI")
    ctx: dict[str, str | int] = {
        "function": "RSI", "symbol": "IBM", "interval": "daily", "time_period": "14", "series_type": "close",
    }  # fmt: skip
    out = parse(raw, ctx, state)
    pts = out.records
    assert [type(p) for p in pts] == [IndicatorPoint] * 5
    assert [p.sub_seq for p in pts] == [0, 1, 2, 3, 4]
    # Oldest first; "2025-12-16" at midnight US/Eastern = 05:00 UTC.
    assert pts[-1].ts_event == int(dt.datetime(2025, 12, 16, 5, tzinfo=dt.UTC).timestamp()) * E9
    assert pts[0].ts_event == int(dt.datetime(2025, 12, 12, 5, tzinfo=dt.UTC).timestamp()) * E9
    series = json.loads(raw)["Technical Analysis: RSI"]
    whole, frac = series["2025-12-16"]["RSI"].split(".")
    assert pts[-1].values == {"RSI": int(whole) * E9 + int(frac) * 10**5}
    assert pts[-1].params == {"time_period": "14", "series_type": "close"}
    assert (pts[-1].indicator, pts[-1].interval) == ("RSI", "daily")
    again = parse(raw, ctx, state)  # the same history again: nothing new, a control answer
    assert again.control and again.records == []
    # one newer point on top of the repeated history: only that one
    doc = json.loads(raw)
    doc["Technical Analysis: RSI"] = {"2025-12-17": {"RSI": "61.0100"}, **doc["Technical Analysis: RSI"]}
    newer = parse(json.dumps(doc).encode(), ctx, state)
    assert [(p.values, p.sub_seq) for p in newer.records] == [({"RSI": 61_010_000_000}, 0)]
    other = parse(raw, {**ctx, "time_period": "20"}, state)  # another series: its own history
    assert len(other.records) == 5
    assert pickle.loads(pickle.dumps(state)).emitted == state.emitted


def test_multi_value_indicators_and_live_key() -> None:
    state = PARSER.new_state()
    macd = parse(body("MACD"), {"function": "MACD", "symbol": "IBM", "interval": "daily"}, state).records
    assert set(macd[0].values) == {"MACD", "MACD_Hist", "MACD_Signal"}
    bb = next(p for u, p in bodies() if "BBANDS" in u and "time_period=10" in u)
    ctx: dict[str, str | int] = {
        "function": "BBANDS",
        "symbol": "IBM",
        "interval": "60min",
        "time_period": "10",
    }
    pts = parse(bb, ctx, state).records
    # "2025-12-16 15:29:53" (the live newest key, with seconds) in EST -> 20:29:53 UTC
    assert pts[-1].ts_event == int(dt.datetime(2025, 12, 16, 20, 29, 53, tzinfo=dt.UTC).timestamp()) * E9
    assert pts[-1].values == {
        "Real Upper Band": 301_281_100_000,
        "Real Lower Band": 290_102_100_000,
        "Real Middle Band": 295_691_600_000,
    }
    atr = parse(body("ATR"), {"function": "ATR", "symbol": "IBM", "interval": "daily"}, state).records
    assert set(atr[0].values) == {"ATR"}


def test_series_state_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from tickwire.vendors.alphavantage import parser as mod

    monkeypatch.setattr(mod, "MAX_SERIES", 3)
    state = PARSER.new_state()
    for period in range(6):
        parse(
            body("RSI"),
            {"function": "RSI", "symbol": "IBM", "interval": "daily", "time_period": period},
            state,
        )
    assert len(state.emitted) == 3
    assert [k[3] for k in state.emitted] == ["time_period=3", "time_period=4", "time_period=5"]


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (
            b'{"Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls"}',
            "throttle",
        ),
        (b'{"Information": "You have exceeded the rate limit per minute for your plan"}', "throttle"),
        (b'{"Error Message": "Invalid API call."}', "error"),
        (b'{"Global Quote": {"01. symbol": "IBM", "05. price": "290.1000"}}', "quote"),
        (b'{"Global Quote": {}}', "quote"),
    ],
)
def test_non_data_bodies_are_counted_control(payload: bytes, kind: str) -> None:
    state = PARSER.new_state()
    # The poller's outcome says "data": the parser reads the body itself and still emits nothing.
    out = parse(payload, {"function": "RSI", "symbol": "IBM", "http_status": 200, "outcome": "data"}, state)
    assert out.control and out.records == [] and state.control == {kind: 1}


def test_premium_sample_never_becomes_data() -> None:
    raw = next(p for u, p in bodies() if b"premium endpoint" in p)
    state = PARSER.new_state()
    ctx: dict[str, str | int] = {"function": "REALTIME_OPTIONS", "symbol": "IBM", "outcome": "data"}
    out = parse(raw, ctx, state)
    assert out.control and out.records == [] and state.control["premium_sample"] == 1
    # artificial rows alone (message rewritten to "success") are still recognized
    doc = json.loads(raw)
    doc["message"] = "success"
    out = parse(json.dumps(doc).encode(), ctx, state)
    assert out.control and state.control["premium_sample"] == 2


def test_http_errors_are_control_and_malformed_json_is_a_parse_error() -> None:
    state = PARSER.new_state()
    out = parse(b'{"error": "internal server error"}', {"function": "RSI", "http_status": 500}, state)
    assert out.control and state.control["http_error"] == 1
    with pytest.raises(ParseError):
        parse(b'{"Meta Data": {"1: Symbol": "IBM"', {"function": "RSI", "symbol": "IBM"}, state)
    with pytest.raises(ParseError):
        parse(b"[1, 2]", {"function": "RSI", "symbol": "IBM"}, state)
    with pytest.raises(ParseError):  # JSON of no known shape
        parse(b'{"hello": "world"}', {"function": "RSI", "symbol": "IBM"}, state)
    bad = json.loads(body("REALTIME_OPTIONS"))
    bad["data"][0]["strike"] = "12.3.4"
    with pytest.raises(ParseError, match="strike"):
        parse(json.dumps(bad).encode(), {"function": "REALTIME_OPTIONS", "symbol": "IBM"}, state)


def test_absent_values_and_long_greeks() -> None:
    row = json.loads(body("REALTIME_OPTIONS"))["data"][0]
    row |= {"last": "", "volume": "None", "delta": "0.12345678912", "gamma": "-0.0000000005"}
    raw = json.dumps({"endpoint": "Realtime Options", "message": "success", "data": [row]}).encode()
    c = parse(raw, {"function": "REALTIME_OPTIONS", "symbol": "IBM"}).records[0].contracts[0]
    assert c.last is None and c.volume is None
    assert c.delta == 123_456_789  # 0.12345678912 -> half-even to 1e-9
    assert c.gamma == 0  # -0.0000000005 -> half-even: 0


def test_records_round_trip_through_the_codec() -> None:
    codec = Codec()
    state = PARSER.new_state()
    n = 0
    for seq, (url, payload) in enumerate(bodies(), 1):
        e = Envelope("alphavantage", "rest.query?" + url.split("?", 1)[1], 1, seq, TS_RECV, "json")
        for rec in PARSER.parse(payload, e, state).records:
            assert codec.decode(codec.encode(rec)) == rec
            n += 1
    assert n > 20
    assert state.control == {"quote": 1, "throttle": 2, "error": 1, "premium_sample": 1}
