"""TWS API framing, fields, handshake and message layouts (``tickwire.vendors.ibkr.wire``)."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest

from tickwire.vendors.ibkr import sim_script as script
from tickwire.vendors.ibkr import wire
from tickwire.vendors.ibkr import wire_requests as wr
from tickwire.vendors.ibkr.wire import In, Out
from tickwire.vendors.ibkr.wire_requests import Contract


def test_frame_is_length_prefix_and_nul_terminated_fields() -> None:
    f = wire.frame([13, 1, 3, 0, "NSDQ", 0, 1, "600.01", "300", True])
    assert f == struct.pack(">I", 31) + b"13\x001\x003\x000\x00NSDQ\x000\x001\x00600.01\x00300\x001\x00"
    assert wire.fields_of(f[4:]) == ["13", "1", "3", "0", "NSDQ", "0", "1", "600.01", "300", "1"]
    assert wire.fields_of(b"4\x002\x00-1\x00\x00") == ["4", "2", "-1", ""]  # empty field = unset
    assert wire.msg_id(f[4:]) == 13 and wire.msg_id(b"") == -1


def test_fields_of_rejects_a_body_without_final_nul_or_not_utf8() -> None:
    with pytest.raises(wire.WireError):
        wire.fields_of(b"13\x001")
    with pytest.raises(wire.WireError):
        wire.fields_of(b"\xff\x00")


def test_frame_reader_splits_across_reads_and_keeps_bytes() -> None:
    stream = wire.frame([9, 1, 7]) + wire.frame([15, 1, "DU1,DU2"]) + wire.frame([49, 1, 1700000000])
    r = wire.FrameReader()
    out: list[bytes] = []
    for i in range(0, len(stream), 3):  # three bytes per read: prefixes and bodies split everywhere
        out += r.feed(stream[i : i + 3])
    assert [wire.fields_of(b) for b in out] == [
        ["9", "1", "7"],
        ["15", "1", "DU1,DU2"],
        ["49", "1", "1700000000"],
    ]
    assert b"".join(struct.pack(">I", len(b)) + b for b in out) == stream
    with pytest.raises(wire.WireError):
        wire.FrameReader().feed(struct.pack(">I", wire.MAX_MESSAGE + 1))


def test_handshake_request_and_version_range() -> None:
    h = wire.handshake_request(157, 178)
    assert h == b"API\x00" + struct.pack(">I", 9) + b"v157..178"
    assert wire.parse_version_range(b"v157..178") == (157, 178)
    assert wire.parse_version_range(b"v100..157 +PACEAPI") == (100, 157)
    assert wire.parse_version_range(b"v176") == (176, 176)
    with pytest.raises(wire.WireError):
        wire.parse_version_range(b"x1..2")


SPY = Contract("SPY", "ARCA")


@pytest.mark.parametrize(
    ("fields", "want"),
    [
        (wr.req_mkt_depth(5, SPY, 10, False), wr.Request("reqMktDepth", 10, 5, "SPY", "ARCA", "rows=10")),
        (
            wr.req_mkt_depth(6, Contract("QQQ"), 5, True),
            wr.Request("reqMktDepth", 10, 6, "QQQ", "SMART", "rows=5", True),
        ),
        (wr.cancel_mkt_depth(5, True), wr.Request("cancelMktDepth", 11, 5, smart=True)),
        (
            wr.req_tick_by_tick(7, SPY, "BidAsk"),
            wr.Request("reqTickByTickData", 97, 7, "SPY", "ARCA", "BidAsk"),
        ),
        (wr.cancel_tick_by_tick(7), wr.Request("cancelTickByTickData", 98, 7)),
        (wr.req_real_time_bars(8, SPY), wr.Request("reqRealTimeBars", 50, 8, "SPY", "ARCA", "5s TRADES")),
        (wr.cancel_real_time_bars(8), wr.Request("cancelRealTimeBars", 51, 8)),
        (wr.req_mkt_data(9, SPY), wr.Request("reqMktData", 1, 9, "SPY", "ARCA")),
        (wr.cancel_mkt_data(9), wr.Request("cancelMktData", 2, 9)),
        (wr.start_api(42), wr.Request("startApi", 71, -1, detail="42")),
        (wr.req_current_time(), wr.Request("reqCurrentTime", 49)),
    ],
)
def test_requests_encode_and_decode(fields: list[wire.Field], want: wr.Request) -> None:
    assert wr.decode_request(wire.fields_of(wire.frame(fields)[4:])) == want


def test_request_layouts_match_ib_async() -> None:
    """Field lists as ``ib_async.client`` writes them (reqMktDepth version 5, 12 contract fields)."""
    assert wr.req_mkt_depth(3, SPY, 5, False) == [
        Out.REQ_MKT_DEPTH,
        5,
        3,
        0,
        "SPY",
        "STK",
        "",
        "0.0",
        "",
        "",
        "ARCA",
        "",
        "USD",
        "",
        "",
        5,
        False,
        "",
    ]
    assert wr.req_tick_by_tick(4, SPY, "AllLast")[:2] == [97, 4] and wr.req_tick_by_tick(4, SPY, "AllLast")[
        -3:
    ] == ["AllLast", 0, False]
    assert wr.req_real_time_bars(6, SPY)[-4:] == [5, "TRADES", False, ""]


def test_malformed_request_raises_wire_error() -> None:
    with pytest.raises(wire.WireError):
        wr.decode_request(["10", "5"])


@pytest.mark.parametrize(
    "msg",
    [
        wire.MktDepthL2(3, 0, "NSDQ", 0, 1, "600.01", "300", True),
        wire.MktDepth(3, 2, 1, 0, "600.02", "100"),
        wire.TickLast(4, 2, 1764633600, "600.02", "100", 2, "ARCA", " T"),
        wire.TickBidAsk(5, 3, 1764633600, "600.01", "600.03", "300", "200", 1),
        wire.RealTimeBar(6, 1764633600, "600.00", "600.05", "599.98", "600.02", "1200", "600.011", 17),
        wire.TickPrice(7, 1, "599.99", "500", 1),
        wire.TickSize(7, 3, "700"),
        wire.ErrorMsg(-1, 2104, "Market data farm connection is OK:usfarm", ""),
    ],
)
def test_server_messages_round_trip(msg: wire.Msg) -> None:
    f = wire.fields_of(wire.frame(msg.to_fields())[4:])
    assert f[0] == str(msg.MSG_ID)
    assert wire.decode_message(f) == msg


def test_server_message_layouts() -> None:
    """The verified frames of vendors-next.md §3.1 (what ib_async decoded)."""
    assert [wire.text(x) for x in wire.MktDepthL2(3, 0, "NSDQ", 0, 1, "600.01", "300", True).to_fields()] == (
        ["13", "1", "3", "0", "NSDQ", "0", "1", "600.01", "300", "1"]
    )
    assert [wire.text(x) for x in wire.TickLast(2, 2, 9, "600.02", "100", 0, "ARCA", "").to_fields()] == (
        ["99", "2", "2", "9", "600.02", "100", "0", "ARCA", ""]
    )
    bar = wire.RealTimeBar(6, 9, "600.00", "600.05", "599.98", "600.02", "1200", "600.011", 17)
    assert [wire.text(x) for x in bar.to_fields()] == [
        "50",
        "3",
        "6",
        "9",
        "600.00",
        "600.05",
        "599.98",
        "600.02",
        "1200",
        "600.011",
        "17",
    ]
    assert wire.decode_message(["9", "1", "1"]) is None and In.TICK_BY_TICK == Out.REQ_COMPLETED_ORDERS


def _depth(seed: int, n: int) -> tuple[list[wire.MktDepthL2], script.DepthBook]:
    book = script.DepthBook(3, "SPY", "ARCA", False, 4, script.rng_for(seed, "SPY", "ARCA", "depth"))
    return [book.next() for _ in range(n)], book


def test_simulated_depth_is_deterministic_and_keeps_tws_position_semantics() -> None:
    msgs, book = _depth(1, 300)
    assert msgs == _depth(1, 300)[0] and msgs != _depth(2, 300)[0]
    sides: dict[int, list[tuple[str, str]]] = {0: [], 1: []}
    shifted = 0
    for m in msgs:
        side = sides[m.side]
        if m.operation == 0:  # insert: rows at and below move down
            shifted += m.position < len(side)
            side.insert(m.position, (m.price, m.size))
        elif m.operation == 1:
            side[m.position] = (m.price, m.size)
        else:  # delete: rows below move up
            del side[m.position]
        assert len(side) <= 4 and m.market_maker == "ARCA"
        bids, asks = [Decimal(p) for p, _ in sides[1]], [Decimal(p) for p, _ in sides[0]]
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
        assert not bids or not asks or bids[0] < asks[0]
    assert shifted > 0 and {m.operation for m in msgs} == {0, 1, 2}
    assert sides[1] == [(script.px(lv.cents), str(lv.size)) for lv in book.bids]
    assert sides[0] == [(script.px(lv.cents), str(lv.size)) for lv in book.asks]


def test_simulated_ticks_and_bars_are_decimal_text_and_deterministic() -> None:
    rng = script.rng_for(5, "QQQ", "SMART", "bars5s")
    bars = [script.bar(1, "QQQ", rng, 1_764_633_600 + 5 * i) for i in range(50)]
    rng2 = script.rng_for(5, "QQQ", "SMART", "bars5s")
    assert bars == [script.bar(1, "QQQ", rng2, 1_764_633_600 + 5 * i) for i in range(50)]
    for b in bars:
        o, h, lo, c = (Decimal(x) for x in (b.open, b.high, b.low, b.close))
        assert lo <= min(o, c) <= max(o, c) <= h and Decimal(b.wap) == (o + c) / 2
    t = script.trade(2, "SPY", script.rng_for(1, "SPY", "SMART", "tbt_last"), 9)
    assert Decimal(t.price) == Decimal(t.price).quantize(Decimal("0.01")) and t.time == 9
    q = script.bid_ask(3, "SPY", script.rng_for(1, "SPY", "SMART", "tbt_bidask"), 9)
    assert Decimal(q.bid_price) < Decimal(q.ask_price)
