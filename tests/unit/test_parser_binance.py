"""Binance parser over the recorded real session (tests/fixtures/binance) plus synthetic edge frames."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tickwire.contract.envelope import Envelope
from tickwire.contract.parser import ParseError, ParseOutput
from tickwire.contract.records import Bar, BookUpdate, Level, Quote, Trade
from tickwire.recording import received
from tickwire.vendors.binance.parser import PARSER, BinanceState

FIX = Path(__file__).parents[1] / "fixtures" / "binance"
INFO = json.loads((FIX / "exchangeInfo.min.json").read_bytes())
T0 = 1_633_998_512_063_356_900  # ts_recv of the first recorded frame, ns


FRAMES = received(FIX / "ws-session.txt")


def env(seq: int = 1, ts_recv: int = T0, stream: str = "spot") -> Envelope:
    return Envelope("binance", stream, 42, seq, ts_recv, "json")


def parse(obj: Any, state: BinanceState, seq: int = 1, stream: str = "spot", ts: int = T0) -> ParseOutput:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return PARSER.parse(raw, env(seq, ts, stream), state)


def depth(sym: str, first: int, last: int, bid: str = "1.0") -> dict[str, Any]:
    data = {
        "e": "depthUpdate",
        "E": 1633998512068,
        "s": sym,
        "U": first,
        "u": last,
        "b": [[bid, "2"]],
        "a": [],
    }
    return {"stream": f"{sym.lower()}@depth@100ms", "data": data}


def snapshot(state: BinanceState, sym: str, last: int) -> ParseOutput:
    doc = {"lastUpdateId": last, "bids": [["0.35", "10"]], "asks": [["0.36", "0"]]}
    return parse(doc, state, stream=f"rest.depth?symbol={sym}&limit=1000")


def test_first_depth_update_exact() -> None:
    ts_recv, payload = FRAMES[0]
    out = PARSER.parse(payload, env(7, ts_recv), PARSER.new_state(INFO))
    assert not out.control and not out.gaps and not out.resync
    (rec,) = out.records
    assert isinstance(rec, BookUpdate)
    assert rec.symbol == "NKN/USDT" and rec.venue == "BINANCE" and rec.asset_class == "crypto"
    assert (rec.source, rec.stream, rec.session, rec.seq, rec.sub_seq) == ("binance", "spot", 42, 7, 0)
    assert rec.bids[0] == Level(351_300_000, 6_195_000_000_000)
    assert [lv.price for lv in rec.bids] == [351_300_000, 347_500_000, 346_400_000]
    assert rec.asks == () and rec.snapshot is False
    assert (rec.first_update_id, rec.last_update_id) == (499869750, 499869752)
    assert rec.ts_event == 1_633_998_512_068_000_000 and rec.ts_recv == 1_633_998_512_063_356_900


def test_recorded_aggtrade_and_bookticker() -> None:
    st = PARSER.new_state(INFO)
    by_stream = {json.loads(p)["stream"]: (ts, p) for ts, p in reversed(FRAMES)}  # first frame per stream
    ts, p = by_stream["nknusdt@aggTrade"]
    (t,) = PARSER.parse(p, env(1, ts), st).records
    assert isinstance(t, Trade)
    # {"a":15683430,"p":"0.35280000","q":"58.00000000","T":1633998523963,"m":false}: buyer was taker -> buy
    assert (t.symbol, t.price, t.size, t.side, t.side_rule) == (
        "NKN/USDT",
        352_800_000,
        58 * 10**9,
        "buy",
        "vendor",
    )
    assert t.trade_id == "15683430" and t.ts_event == 1_633_998_523_963_000_000
    ts, p = by_stream["lrcbtc@bookTicker"]
    (q,) = PARSER.parse(p, env(2, ts), st).records
    assert isinstance(q, Quote) and q.symbol == "LRC/BTC"
    d = json.loads(p)["data"]
    assert (q.bid_price, q.bid_size, q.ask_price, q.ask_size) == tuple(
        int(Decimal(d[k]) * 10**9) for k in "bBaA"
    )
    assert q.ts_event == q.ts_recv == ts  # bookTicker has no event time: documented rule


def test_aggtrade_buyer_maker_is_sell() -> None:
    d = {
        "e": "aggTrade",
        "E": 1,
        "s": "NKNUSDT",
        "a": 9,
        "p": "0.3528",
        "q": "1",
        "T": 1633998523963,
        "m": True,
    }
    (t,) = parse(d, PARSER.new_state()).records  # bare single-stream frame, no combined wrapper
    assert isinstance(t, Trade) and t.side == "sell" and t.trade_id == "9"
    d2 = {
        "e": "trade",
        "E": 1,
        "s": "NKNUSDT",
        "t": 77,
        "p": "0.3528",
        "q": "1",
        "T": 1633998523963,
        "m": False,
    }
    (t2,) = parse(d2, PARSER.new_state()).records
    assert isinstance(t2, Trade) and t2.side == "buy" and t2.trade_id == "77"


def test_kline_only_closed_and_supported() -> None:
    ts, p = next(f for f in FRAMES if b"kline" in f[1])
    st = PARSER.new_state(INFO)
    assert PARSER.parse(p, env(1, ts), st) == ParseOutput(control=True)  # recorded candle is in progress
    doc = json.loads(p)
    doc["data"]["k"]["x"] = True
    (bar,) = parse(doc, st, ts=ts).records
    assert isinstance(bar, Bar) and bar.symbol == "NKN/USDT" and bar.timeframe == "1m"
    assert bar.ts_event == 1_633_998_480_000_000_000  # k.t: the open
    assert (bar.open, bar.high, bar.low, bar.close) == (352_700_000, 352_800_000, 352_200_000, 352_800_000)
    assert bar.volume == 25_877 * 10**9 and bar.trade_count == 30 and bar.vwap is None
    doc["data"]["k"]["i"] = "5m"
    assert parse(doc, st, ts=ts) == ParseOutput(control=True)


def test_whole_session_parses_without_errors_or_gaps() -> None:
    st = PARSER.new_state(INFO)
    kinds: Counter[str] = Counter()
    for seq, (ts, payload) in enumerate(FRAMES, 1):
        out = PARSER.parse(payload, env(seq, ts), st)
        assert not out.gaps and not out.resync
        kinds.update(type(r).__name__ for r in out.records)
        kinds["control"] += out.control
    assert kinds == Counter(BookUpdate=177, Quote=84, Trade=2, control=2)


def test_rest_depth_snapshot_and_continuity() -> None:
    st = PARSER.new_state(INFO)
    (snap,) = snapshot(st, "NKNUSDT", 100).records
    assert (
        isinstance(snap, BookUpdate) and snap.snapshot and snap.last_update_id == 100 and snap.depth == 1000
    )
    assert snap.symbol == "NKN/USDT" and snap.ts_event == T0 and snap.asks == (Level(360_000_000, 0),)
    assert parse(depth("NKNUSDT", 90, 100), st) == ParseOutput(control=True)  # covered by the snapshot
    assert len(parse(depth("NKNUSDT", 95, 105), st).records) == 1  # bridges L+1
    assert not parse(depth("LRCBTC", 1, 5), st).gaps  # another symbol, no snapshot yet
    out = parse(depth("NKNUSDT", 106, 110), st)
    assert out.records and not out.gaps
    jump = parse(depth("NKNUSDT", 115, 120), st)
    assert len(jump.records) == 1  # diffs keep flowing during the resync
    (gap,) = jump.gaps
    assert (gap.symbol, gap.reason, gap.detected_by) == ("NKN/USDT", "vendor_seq_jump", "normalizer")
    assert (gap.last_seq_before, gap.first_seq_after) == (110, 115)
    assert jump.resync == ["NKN/USDT"]
    assert st.book.needs_resync("NKN/USDT") and not st.book.needs_resync("LRC/BTC")
    assert not parse(depth("LRCBTC", 6, 9), st).gaps  # other symbols unaffected
    follow = parse(depth("NKNUSDT", 121, 122), st)
    assert follow.records and not follow.gaps and not follow.resync
    snapshot(st, "NKNUSDT", 130)
    assert not st.book.needs_resync("NKN/USDT")


def test_first_diff_must_bridge_snapshot() -> None:
    st = PARSER.new_state(INFO)
    snapshot(st, "BLZETH", 100)
    out = parse(depth("BLZETH", 102, 104), st)
    assert [(g.symbol, g.last_seq_before, g.first_seq_after) for g in out.gaps] == [("BLZ/ETH", 100, 102)]
    assert out.resync == ["BLZ/ETH"]


def test_diff_to_diff_before_snapshot() -> None:
    st = PARSER.new_state(INFO)
    assert not parse(depth("RUNEEUR", 10, 12), st).gaps
    assert not parse(depth("RUNEEUR", 13, 13), st).gaps
    assert parse(depth("RUNEEUR", 11, 13), st) == ParseOutput(control=True)  # replayed diff
    out = parse(depth("RUNEEUR", 15, 16), st)
    assert [(g.last_seq_before, g.first_seq_after) for g in out.gaps] == [(13, 15)]
    assert [(g.last_seq_before, g.first_seq_after) for g in parse(depth("RUNEEUR", 20, 21), st).gaps] == [
        (16, 20)
    ]


def test_symbol_mapping_from_metadata() -> None:
    meta = {"symbols": [{"symbol": "XYZBTCB", "baseAsset": "XYZ", "quoteAsset": "BTCB"}]}
    d = {"u": 1, "s": "XYZBTCB", "b": "1", "B": "1", "a": "2", "A": "1"}
    with pytest.raises(ParseError, match="unknown symbol"):
        parse(d, PARSER.new_state())
    assert parse(d, PARSER.new_state(meta)).records[0].symbol == "XYZ/BTCB"
    st = PARSER.new_state()
    assert parse(meta, st, stream="rest.exchangeInfo") == ParseOutput(control=True)
    assert parse(d, st).records[0].symbol == "XYZ/BTCB"
    assert PARSER.new_state(json.dumps(INFO).encode()).symbols["RUNEEUR"] == "RUNE/EUR"
    # fallback: longest quote suffix without metadata
    assert PARSER.new_state().canonical("ETHBUSD") == "ETH/BUSD"
    assert PARSER.new_state().canonical("lrcbtc") == "LRC/BTC"


def test_control_frames() -> None:
    st = PARSER.new_state()
    assert parse({"result": None, "id": 1}, st) == ParseOutput(control=True)
    assert parse({"code": 2, "msg": "Invalid request"}, st) == ParseOutput(control=True)
    assert parse({"code": -1121, "msg": "Invalid symbol."}, st, stream="rest.depth?symbol=X") == ParseOutput(
        control=True
    )


def test_json_numbers_are_exact() -> None:
    raw = b'{"u":1,"s":"BTCUSDT","b":0.1,"B":3e2,"a":12345678901234567890123.000000001,"A":"1"}'
    (q,) = parse(raw, PARSER.new_state()).records
    assert isinstance(q, Quote)
    assert (q.bid_price, q.bid_size, q.ask_price) == (
        100_000_000,
        300 * 10**9,
        12345678901234567890123000000001,
    )


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"not json", "not JSON"),
        (b'{"u":1,"s":"BTCUSDT","b":NaN,"B":"1","a":"2","A":"1"}', "non-finite"),
        (b'{"u":1,"s":"BTCUSDT","b":"NaN","B":"1","a":"2","A":"1"}', "bid price"),
        (b'{"u":1,"s":"BTCUSDT","b":"1","B":"-1","a":"2","A":"1"}', "negative"),
        (b'{"u":1,"s":"BTCUSDT","b":["1"],"B":"1","a":"2","A":"1"}', "expected a decimal string"),
        (b'{"u":1,"s":"","b":"1","B":"1","a":"2","A":"1"}', "non-empty"),
        (b'{"u":1,"s":"FOOBAR","b":"1","B":"1","a":"2","A":"1"}', "unknown symbol"),
        (b'{"e":"aggTrade","s":"BTCUSDT","a":1,"p":"1","q":"1","T":1633998523,"m":true}', "sane window"),
        (b'{"e":"aggTrade","s":"BTCUSDT","a":1,"p":"1","q":"1","T":1734000000000,"m":true}', "sane window"),
        (b'{"e":"aggTrade","s":"BTCUSDT","a":1,"p":"1","q":"1","T":"1633998523963","m":true}', "integer"),
        (b'{"e":"aggTrade","s":"BTCUSDT","a":1,"p":"1","q":"1","m":true}', "KeyError"),
        (b'{"e":"24hrTicker","s":"BTCUSDT"}', "unsupported"),
        (b'{"e":"depthUpdate","E":1633998512068,"s":"BTCUSDT","U":5,"u":4,"b":[],"a":[]}', "U=5 > u=4"),
        (b"[1,2]", "JSON object"),
    ],
)
def test_invalid_frames_raise_parse_error(raw: bytes, match: str) -> None:
    with pytest.raises(ParseError, match=match):
        parse(raw, PARSER.new_state())


def test_failed_frame_leaves_continuity_untouched() -> None:
    st = PARSER.new_state()
    parse(depth("BTCUSDT", 1, 2), st)
    with pytest.raises(ParseError):
        parse(depth("BTCUSDT", 3, 4, bid="-1"), st)
    assert not parse(depth("BTCUSDT", 3, 4), st).gaps
