"""TWS parser: depth with position semantics, top-of-book ticks, tick-by-tick, 5 s bars, system codes."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from tickwire.contract.envelope import Envelope, context_header
from tickwire.contract.parser import ParseError
from tickwire.contract.records import Bar, BookUpdate, Quote, Trade
from tickwire.vendors.ibkr.parser import PARSER, decode

TS_RECV = 1_765_000_000_123_456_789
E9 = 10**9


def env(
    seq: int = 1, *, symbol: str = "SPY", exchange: str = "ARCA", kind: str = "depth", req: int = 3
) -> Envelope:
    ctx = {"server_version": 176, "req_id": req, "symbol": symbol, "exchange": exchange, "kind": kind}
    return Envelope("ibkr", "tws.7", 11, seq, TS_RECV, "tws", context=context_header(ctx)[1].decode())


def frame(*fields: object) -> bytes:
    return b"".join(str(f).encode() + b"\0" for f in fields)


def units(text: str) -> int:
    return int(Decimal(text) * E9)


def test_depth_insert_shifts_rows_down_update_and_delete_shift_up() -> None:
    st = PARSER.new_state()
    msgs = [
        frame(13, 1, 3, 0, "NSDQ", 0, 1, "600.01", "300", 1),  # bid row 0
        frame(13, 1, 3, 0, "ARCA", 0, 1, "600.02", "100", 1),  # insert above: 600.01 moves to row 1
        frame(13, 1, 3, 1, "BATS", 0, 1, "600.015", "50", 1),  # insert between
        frame(13, 1, 3, 0, "IEX", 0, 0, "600.05", "10", 1),  # ask row 0
        frame(13, 1, 3, 2, "NSDQ", 1, 1, "600.01", "250", 1),  # update row 2 (the NSDQ 600.01 row)
        frame(13, 1, 3, 0, "ARCA", 2, 1, "600.02", "0", 1),  # delete row 0: rows move up
    ]
    outs = [PARSER.parse(m, env(i + 1), st).records for i, m in enumerate(msgs)]
    last = outs[-1][0]
    assert isinstance(last, BookUpdate) and last.snapshot and last.venue == "ARCA"
    assert [(lv.price, lv.size) for lv in last.bids] == [
        (units("600.015"), units("50")),
        (units("600.01"), units("250")),
    ]
    assert [(lv.price, lv.size) for lv in last.asks] == [(units("600.05"), units("10"))]
    assert last.ts_event == last.ts_recv == TS_RECV
    second = outs[1][0]
    assert isinstance(second, BookUpdate)
    assert [lv.price for lv in second.bids] == [units("600.02"), units("600.01")]


def test_rows_at_one_price_are_summed_with_count() -> None:
    st = PARSER.new_state()
    PARSER.parse(frame(13, 1, 3, 0, "A", 0, 1, "10.5", "100", 0), env(1), st)
    (u,) = PARSER.parse(frame(13, 1, 3, 1, "B", 0, 1, "10.5", "40", 0), env(2), st).records
    assert isinstance(u, BookUpdate)
    assert [(lv.price, lv.size, lv.count) for lv in u.bids] == [(units("10.5"), units("140"), 2)]


def _reference(
    ops: list[tuple[int, int, int, str, str]],
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Independent model of a TWS book: lists of (price text, size text) per side."""
    sides: dict[int, list[tuple[str, str]]] = {0: [], 1: []}
    for pos, op, side, price, size in ops:
        rows = sides[side]
        if op == 0:
            rows[pos:pos] = [(price, size)]
        elif op == 1:
            rows[pos] = (price, size)
        else:
            rows.pop(pos)
    return sides[1], sides[0]


def test_random_depth_sequence_matches_a_reference_model() -> None:
    rng = random.Random(7)
    st = PARSER.new_state()
    ops: list[tuple[int, int, int, str, str]] = []
    lens = {0: 0, 1: 0}
    last: BookUpdate | None = None
    for seq in range(1, 400):
        side = rng.randrange(2)
        n = lens[side]
        op = 0 if n == 0 or (n < 10 and rng.random() < 0.5) else rng.choice([1, 2])
        pos = rng.randrange(n + 1) if op == 0 else rng.randrange(n)
        price = f"{100 + rng.randrange(1000) / 100:.2f}"  # distinct-ish prices; duplicates summed below
        size = str(rng.randrange(1, 900))
        ops.append((pos, op, side, price, size))
        lens[side] += 1 if op == 0 else -1 if op == 2 else 0
        (rec,) = PARSER.parse(frame(13, 1, 3, pos, "MM", op, side, price, size, 1), env(seq), st).records
        assert isinstance(rec, BookUpdate)
        last = rec
    bids, asks = _reference(ops)
    assert last is not None
    for got, want in ((last.bids, bids), (last.asks, asks)):
        agg: dict[int, int] = {}
        for p, s in want:
            agg[units(p)] = agg.get(units(p), 0) + units(s)
        assert [(lv.price, lv.size) for lv in got] == list(agg.items())


def test_bad_depth_position_is_a_parse_error_and_leaves_state() -> None:
    st = PARSER.new_state()
    PARSER.parse(frame(13, 1, 3, 0, "A", 0, 1, "10", "1", 0), env(1), st)
    for bad in (
        frame(13, 1, 3, 5, "A", 0, 1, "10", "1", 0),  # insert past the end
        frame(13, 1, 3, 1, "A", 1, 1, "10", "1", 0),  # update a missing row
        frame(13, 1, 3, 0, "A", 7, 1, "10", "1", 0),  # unknown operation
        frame(13, 1, 3, 0, "A", 0, 4, "10", "1", 0),  # unknown side
        frame(13, 1, 3, 0, "A", 0, 1, "abc", "1", 0),  # not a decimal
    ):
        with pytest.raises(ParseError):
            PARSER.parse(bad, env(2), st)
    (u,) = PARSER.parse(frame(13, 1, 3, 0, "A", 1, 1, "11", "2", 0), env(3), st).records
    assert isinstance(u, BookUpdate) and [(lv.price, lv.size) for lv in u.bids] == [(11 * E9, 2 * E9)]


def test_level1_depth_message_12() -> None:
    st = PARSER.new_state()
    (u,) = PARSER.parse(frame(12, 1, 3, 0, 0, 0, "99.5", "7"), env(1), st).records
    assert isinstance(u, BookUpdate) and u.asks[0].price == units("99.5") and not u.bids


def test_top_of_book_ticks_make_a_one_level_book_per_exchange() -> None:
    st = PARSER.new_state()
    e = {"kind": "top", "exchange": "BYX"}
    (a,) = PARSER.parse(frame(1, 6, 9, 1, "600.01", "300", 0), env(1, **e), st).records
    (b,) = PARSER.parse(frame(1, 6, 9, 2, "600.03", "200", 0), env(2, **e), st).records
    (c,) = PARSER.parse(frame(2, 6, 9, 0, "500"), env(3, **e), st).records
    assert isinstance(c, BookUpdate) and c.venue == "BYX" and c.snapshot
    assert [(lv.price, lv.size) for lv in c.bids] == [(units("600.01"), 500 * E9)]
    assert [(lv.price, lv.size) for lv in c.asks] == [(units("600.03"), 200 * E9)]
    (d,) = PARSER.parse(frame(1, 6, 9, 1, "-1", "0", 0), env(4, **e), st).records  # bid gone
    assert isinstance(d, BookUpdate) and d.bids == () and len(d.asks) == 1
    out = PARSER.parse(frame(1, 6, 9, 4, "600.02", "10", 0), env(5, **e), st)  # last price: not a book
    assert out.control and not out.records
    assert isinstance(a, BookUpdate) and isinstance(b, BookUpdate)


def test_tick_by_tick_trade_and_quote() -> None:
    st = PARSER.new_state()
    (t,) = PARSER.parse(
        frame(99, 4, 2, 1765000000, "600.02", "100", 3, "ARCA", "T I"), env(1, kind="tbt_last"), st
    ).records
    assert isinstance(t, Trade)
    assert (t.price, t.size, t.venue, t.ts_event) == (units("600.02"), 100 * E9, "ARCA", 1765000000 * E9)
    assert t.conditions == ("past_limit", "unreported", "T", "I")
    assert (t.side, t.side_rule) == ("unknown", "none")
    (q,) = PARSER.parse(
        frame(99, 5, 3, 1765000001, "600.01", "600.03", "300", "200", 2),
        env(2, kind="tbt_bidask", exchange="SMART"),
        st,
    ).records
    assert isinstance(q, Quote)
    assert (q.bid_price, q.ask_price, q.bid_size, q.ask_size) == (
        units("600.01"),
        units("600.03"),
        300 * E9,
        200 * E9,
    )
    assert q.venue == "SMART" and q.conditions == ("ask_past_high",) and q.ts_event == 1765000001 * E9
    assert PARSER.parse(frame(99, 6, 4, 1765000001, "600.02"), env(3), st).control


def test_five_second_bar() -> None:
    st = PARSER.new_state()
    (b,) = PARSER.parse(
        frame(50, 3, 6, 1764999995, "600.00", "600.05", "599.98", "600.02", "1200", "600.011", 17),
        env(1, kind="bars5s"),
        st,
    ).records
    assert isinstance(b, Bar) and b.timeframe == "5s" and b.origin == "vendor"
    assert (b.open, b.high, b.low, b.close) == (600 * E9, units("600.05"), units("599.98"), units("600.02"))
    assert (b.volume, b.vwap, b.trade_count, b.ts_event) == (1200 * E9, units("600.011"), 17, 1764999995 * E9)


def test_data_lost_and_farm_broken_reset_books_of_their_scope() -> None:
    st = PARSER.new_state()
    for i, (sym, ex) in enumerate([("SPY", "ARCA"), ("SPY", "NSDQ"), ("QQQ", "ARCA")]):
        PARSER.parse(frame(13, 1, 3, 0, "M", 0, 1, "10", "1", 0), env(i + 1, symbol=sym, exchange=ex), st)
    out = PARSER.parse(frame(4, 2, 3, 317, "depth reset", ""), env(9, kind="system", exchange="NSDQ"), st)
    assert out.control and out.resync == ["SPY"] and set(st.depth) == {("SPY", "ARCA"), ("QQQ", "ARCA")}
    # An insert at row 0 on the reset book starts it afresh (no stale rows below it).
    (u,) = PARSER.parse(frame(13, 1, 3, 0, "M", 0, 1, "11", "2", 0), env(10, exchange="NSDQ"), st).records
    assert isinstance(u, BookUpdate) and [lv.price for lv in u.bids] == [11 * E9]
    out = PARSER.parse(
        frame(4, 2, -1, 1101, "data lost", ""), env(11, symbol="", exchange="", kind="system"), st
    )
    assert out.control and out.resync == ["QQQ", "SPY"] and not st.depth
    out = PARSER.parse(
        frame(4, 2, -1, 2104, "farm OK", ""), env(12, symbol="", exchange="", kind="system"), st
    )
    assert out.control and out.resync == [] and not out.records


def test_unknown_and_malformed_messages_are_parse_errors() -> None:
    st = PARSER.new_state()
    for bad in (frame(9, 1, 1), frame(77, 1), b"13\x001", frame("x", 1), frame(50, 3, 6, 1), b"\xff\x00"):
        with pytest.raises(ParseError):
            PARSER.parse(bad, env(1), st)
    with pytest.raises(ParseError):  # book message without a symbol in the context
        PARSER.parse(frame(13, 1, 3, 0, "M", 0, 1, "10", "1", 0), env(1, symbol=""), st)
    with pytest.raises(ParseError):  # trade time in ms is no epoch second
        PARSER.parse(frame(99, 4, 2, 1765000000000, "1", "1", 0, "A", ""), env(1), st)


def test_decode_is_typed() -> None:
    m = decode(frame(13, 1, 3, 2, "NSDQ", 1, 0, "600.01", "300", 1))
    assert (m.req_id, m.position, m.mm, m.operation, m.side, m.price, m.size) == (
        3,
        2,
        "NSDQ",
        1,
        0,
        "600.01",
        "300",
    )  # type: ignore[union-attr]
