"""Polygon/Massive parser: exact values per event type, OSI tickers, the q gap rule, control frames."""

from __future__ import annotations

import datetime as dt

import pytest

from tickwire.contract.envelope import Envelope
from tickwire.contract.parser import ParseError
from tickwire.contract.records import Bar, Quote, Trade
from tickwire.vendors.polygon.parser import PARSER, PolygonState

TS_RECV = 1_766_000_000 * 10**9


def env(stream: str = "stocks", seq: int = 1) -> Envelope:
    return Envelope("polygon", stream, 7, seq, TS_RECV, "json")


def parse(payload: bytes, state: PolygonState | None = None, stream: str = "stocks") -> list[object]:
    return list(PARSER.parse(payload, env(stream), state or PARSER.new_state()).records)


def test_stock_trade_spec_example_exact() -> None:
    p = (
        b'[{"ev":"T","sym":"MSFT","x":4,"i":"12345","z":3,"p":114.125,"s":100,"c":[0,12],'
        b'"t":1536036818784,"q":3681328}]'
    )
    (t,) = parse(p)
    assert isinstance(t, Trade)
    assert (t.symbol, t.asset_class, t.venue, t.trade_id, t.conditions) == (
        "MSFT",
        "equity",
        "4",
        "12345",
        ("0", "12"),
    )
    assert (t.price, t.size) == (114_125_000_000, 100 * 10**9)
    assert t.ts_event == 1_536_036_818_784_000_000 and t.ts_recv == TS_RECV
    assert (t.side, t.side_rule, t.underlying, t.strike) == ("unknown", "none", None, None)
    assert (t.tape, t.trf_id, t.trf_ts) == ("3", None, None)  # on the tape, not a TRF print
    assert (t.source, t.stream, t.session, t.seq, t.sub_seq) == ("polygon", "stocks", 7, 1, 0)


def test_prices_never_through_float() -> None:
    # 0.1 + 0.2 style values and 9 decimals survive exactly; a float would print 670.1234567890001 etc.
    p = (
        b'[{"ev":"T","sym":"SPY","p":670.123456789,"s":3,"t":1765900800004,"q":1},'
        b'{"ev":"T","sym":"SPY","p":0.3,"s":0.000000001,"t":1765900800005,"q":2}]'
    )
    a, b = parse(p)
    assert isinstance(a, Trade) and isinstance(b, Trade)
    assert (a.price, b.price, b.size) == (670_123_456_789, 300_000_000, 1)


def test_fractional_size_ds_and_trf_fields() -> None:
    p = (
        b'[{"ev":"T","sym":"BRK.B","x":4,"i":"9","z":1,"p":498.5,"s":5,"ds":"5.25","c":[],'
        b'"t":1765900800269,"q":5,"trfi":202,"trft":1765900800267}]'
    )
    (t,) = parse(p)
    assert isinstance(t, Trade)
    assert (t.symbol, t.size, t.ts_event) == ("BRK.B", 5_250_000_000, 1_765_900_800_269_000_000)  # SIP time
    assert (t.tape, t.trf_id, t.trf_ts) == ("1", "202", 1_765_900_800_267_000_000)  # TRF time ms -> ns


def test_stock_quote_sizes_are_round_lots_option_quote_sizes_contracts() -> None:
    stock = (
        b'[{"ev":"Q","sym":"SPY","bx":11,"ax":12,"bp":670.12,"ap":670.13,"bs":3,"as":5,"c":1,"i":[604],'
        b'"t":1765900800005,"q":9,"z":2}]'
    )
    (q,) = parse(stock)
    assert isinstance(q, Quote)
    assert (q.bid_price, q.ask_price) == (670_120_000_000, 670_130_000_000)
    assert (q.bid_size, q.ask_size) == (300 * 10**9, 500 * 10**9)  # 3 and 5 round lots of 100 shares
    assert (q.bid_venue, q.ask_venue, q.conditions) == ("11", "12", ("1",))
    opt = (
        b'[{"ev":"Q","sym":"O:SPY241220P00720000","bx":302,"ax":302,"bp":9.71,"ap":9.81,"bs":17,"as":24,'
        b'"t":1644506128351,"q":844090872}]'
    )
    (oq,) = parse(opt, stream="options")
    assert isinstance(oq, Quote)
    assert (oq.symbol, oq.asset_class, oq.bid_size, oq.ask_size) == (
        "SPY241220P00720000",
        "option",
        17 * 10**9,
        24 * 10**9,
    )
    assert (oq.bid_price, oq.ask_price, oq.ts_event) == (
        9_710_000_000,
        9_810_000_000,
        1_644_506_128_351_000_000,
    )


@pytest.mark.parametrize(
    ("ticker", "root", "expiry", "right", "strike"),
    [
        ("O:SPY251216C00676000", "SPY", dt.date(2025, 12, 16), "C", 676 * 10**9),
        ("O:SPXW251216P06700000", "SPXW", dt.date(2025, 12, 16), "P", 6700 * 10**9),
        ("O:F260116C00012500", "F", dt.date(2026, 1, 16), "C", 12_500_000_000),
        ("O:GOOGL251219P00172500", "GOOGL", dt.date(2025, 12, 19), "P", 172_500_000_000),
    ],
)
def test_option_trade_fields_from_the_osi_ticker(
    ticker: str, root: str, expiry: dt.date, right: str, strike: int
) -> None:
    p = f'[{{"ev":"T","sym":"{ticker}","x":65,"p":1.37,"s":4,"c":[209],"t":1765900800004,"q":844090872}}]'
    (t,) = parse(p.encode(), stream="options")
    assert isinstance(t, Trade)
    assert (t.symbol, t.asset_class, t.underlying, t.expiry, t.right, t.strike) == (
        ticker[2:],
        "option",
        root,
        expiry,
        right,
        strike,
    )
    assert (t.price, t.size, t.ts_event, t.venue) == (
        1_370_000_000,
        4 * 10**9,
        1_765_900_800_004_000_000,
        "65",
    )
    assert t.trade_id == "1765900800004-844090872"  # deterministic: the feed has no id for options


def test_aggregates_are_vendor_bars_stamped_at_window_start() -> None:
    p = (
        b'[{"ev":"AM","sym":"GTE","v":4110,"av":9470157,"op":0.4372,"vw":0.4488,"o":0.4488,"c":0.4486,'
        b'"h":0.4489,"l":0.4486,"a":0.4352,"z":685,"s":1610144640000,"e":1610144700000},'
        b'{"ev":"A","sym":"GTE","v":10,"o":0.4488,"c":0.4486,"h":0.4489,"l":0.4486,"s":1610144640000,'
        b'"e":1610144641000}]'
    )
    am, a = parse(p)
    assert isinstance(am, Bar) and isinstance(a, Bar)
    assert (am.timeframe, a.timeframe, am.origin) == ("1m", "1s", "vendor")
    assert (am.open, am.high, am.low, am.close) == (448_800_000, 448_900_000, 448_600_000, 448_600_000)
    assert (am.volume, am.vwap, a.vwap) == (4110 * 10**9, 448_800_000, None)
    assert am.ts_event == a.ts_event == 1_610_144_640_000_000_000


def test_mixed_frame_keeps_order_and_sub_seq() -> None:
    p = (
        b'[{"ev":"status","status":"success","message":"subscribed to: T.SPY"},'
        b'{"ev":"T","sym":"SPY","p":1,"s":1,"t":1765900800004,"q":1},'
        b'{"ev":"Q","sym":"SPY","bp":1,"ap":2,"bs":1,"as":1,"t":1765900800005,"q":2}]'
    )
    out = PARSER.parse(p, env(), PARSER.new_state())
    assert [type(r).__name__ for r in out.records] == ["Trade", "Quote"]
    assert [r.sub_seq for r in out.records] == [1, 2] and not out.control


def test_q_regressions_and_repeats_per_ticker_are_gaps_forward_jumps_are_not() -> None:
    st = PARSER.new_state()

    def t(sym: str, q: int, ev: str = "T") -> bytes:
        if ev == "Q":
            return (
                f'[{{"ev":"Q","sym":"{sym}","bp":1,"ap":2,"bs":1,"as":1,"t":1765900800005,"q":{q}}}]'.encode()
            )
        return f'[{{"ev":"T","sym":"{sym}","p":1,"s":1,"t":1765900800004,"q":{q}}}]'.encode()

    def gaps(p: bytes) -> list[tuple[str | None, int | None, int | None]]:
        return [(g.symbol, g.last_seq_before, g.first_seq_after) for g in PARSER.parse(p, env(), st).gaps]

    assert gaps(t("SPY", 100)) == []
    assert gaps(t("SPY", 107)) == []  # not contiguous by design
    assert gaps(t("AAPL", 5)) == []  # per ticker
    assert gaps(t("SPY", 3, "Q")) == []  # quotes have their own sequence space
    assert gaps(t("SPY", 107)) == [("SPY", 107, 107)]  # repeat
    assert gaps(t("SPY", 90)) == [("SPY", 107, 90)]  # regression
    assert gaps(t("SPY", 100)) == [("SPY", 107, 100)]  # still below the high-water mark
    assert gaps(t("SPY", 108)) == []
    g = PARSER.parse(t("SPY", 108), env(), st).gaps[0]
    assert (g.reason, g.detected_by, g.source, g.stream) == (
        "vendor_seq_jump",
        "normalizer",
        "polygon",
        "stocks",
    )


def test_status_frames_are_control_and_remembered() -> None:
    st = PARSER.new_state()
    out = PARSER.parse(b'[{"ev":"status","status":"auth_success","message":"authenticated"}]', env(), st)
    assert out.control and not out.records and st.statuses == [("auth_success", "authenticated")]


def test_unknown_ev_skipped_beside_known_only_unknown_is_an_error() -> None:
    st = PARSER.new_state()
    p = b'[{"ev":"LULD","sym":"SPY"},{"ev":"T","sym":"SPY","p":1,"s":1,"t":1765900800004,"q":1}]'
    assert len(PARSER.parse(p, env(), st).records) == 1 and st.skipped["unknown:LULD"] == 1
    with pytest.raises(ParseError):
        PARSER.parse(b'[{"ev":"LULD","sym":"SPY"}]', env(), st)


@pytest.mark.parametrize(
    "payload",
    [
        b'[{"ev":"T","sym":"SPY","p":1,"s":1,"t":1765900800004',  # truncated
        b'[{"ev":"T","sym":"SPY","p":-1,"s":1,"t":1765900800004}]',  # negative price
        b'[{"ev":"T","sym":"SPY","p":"abc","s":1,"t":1765900800004}]',  # not a number
        b'[{"ev":"T","sym":"SPY","p":1,"s":1,"t":1765900800004000}]',  # ns where ms belong: far future
        b'[{"ev":"T","sym":"O:SPY25121C00676000","p":1,"s":1,"t":1765900800004}]',  # bad OSI ticker
        b'[{"ev":"T","sym":"SPY","s":1,"t":1765900800004}]',  # no price
        b'[{"ev":"T","sym":"SPY","p":1,"s":1,"t":1765900800004,"trft":99999999999999999999}]',  # TRF time
    ],
)
def test_bad_frames_are_parse_errors(payload: bytes) -> None:
    with pytest.raises(ParseError):
        PARSER.parse(payload, env(), PARSER.new_state())


def test_stream_for_url() -> None:
    assert PARSER.stream_for_url("wss://socket.massive.com/options") == "options"
    assert PARSER.stream_for_url("ws://127.0.0.1:5/stocks") == "stocks"
    assert PARSER.stream_for_url("wss://socket.massive.com/crypto") is None
