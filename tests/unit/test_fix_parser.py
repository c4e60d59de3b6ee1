"""FIX 4.4 W/X/Y -> canonical fx records: exact decimals, 272/273 event times, 55 per X entry."""

from __future__ import annotations

import pytest

from tickwire.contract.envelope import Envelope
from tickwire.contract.parser import ParseError
from tickwire.contract.records import BookUpdate, Level, Quote, Trade
from tickwire.vendors.fix.codec import encode
from tickwire.vendors.fix.parser import PARSER, FixState, fix_time_ns, fx_symbol

NS = 10**9
DAY = 1_767_225_600 * NS  # 2026-01-01T00:00:00Z
SENT = DAY + 12 * 3600 * NS  # SendingTime 52 = 12:00:00.000, entries say otherwise
U = 10**9  # 1e-9 units per unit


def env(seq: int = 1) -> Envelope:
    return Envelope("fix", "lp-alpha", 42, seq, SENT + NS, "fix")


def msg(msg_type: str, body: list[tuple[int, str]], seq: int = 7) -> bytes:
    return encode(msg_type, sender="LP_ALPHA", target="TW", seq=seq, now_ns=SENT, body=body)


def snapshot(md: str = "TW-1", symbol: str = "EUR/USD") -> bytes:
    return msg(
        "W",
        [
            (55, symbol),
            (262, md),
            (268, "4"),
            *[(269, "0"), (270, "1.08215"), (271, "1000000"), (272, "20260101"), (273, "11:59:59.250")],
            *[(269, "0"), (270, "1.08214"), (271, "2000000"), (272, "20260101"), (273, "11:59:59.250")],
            *[(269, "1"), (270, "1.08219"), (271, "3000000"), (272, "20260101"), (273, "11:59:59.125")],
            *[(269, "1"), (270, "1.08218"), (271, "1500000"), (272, "20260101"), (273, "11:59:59.125")],
        ],
    )


def entry(
    action: str, side: str, eid: str | None, sym: str | None, px: str | None, size: str | None
) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = [(279, action), (269, side)]
    out += [(278, eid)] if eid else []
    out += [(55, sym)] if sym else []
    out += [(270, px)] if px else []
    out += [(271, size)] if size else []
    return [*out, (272, "20260101"), (273, "11:59:58.000000123")]


def book(rec: object) -> BookUpdate:
    assert isinstance(rec, BookUpdate)
    return rec


T_ENTRY = DAY + (11 * 3600 + 59 * 60 + 58) * NS + 123


def test_snapshot_gives_sorted_book_and_top_of_book_quote_with_entry_times() -> None:
    out = PARSER.parse(snapshot(), env(), PARSER.new_state())
    book, quote = out.records
    assert isinstance(book, BookUpdate) and isinstance(quote, Quote)
    assert (
        book.snapshot and book.symbol == "EUR/USD" and book.asset_class == "fx" and book.venue == "LP_ALPHA"
    )
    assert book.bids == (Level(1_082_150_000, 1_000_000 * U), Level(1_082_140_000, 2_000_000 * U))
    assert book.asks == (Level(1_082_180_000, 1_500_000 * U), Level(1_082_190_000, 3_000_000 * U))
    assert (quote.bid_price, quote.bid_size, quote.ask_price, quote.ask_size) == (
        1_082_150_000,
        1_000_000 * U,
        1_082_180_000,
        1_500_000 * U,
    )
    # Seed 002 bug: it took the event time from 52 SendingTime. The entries say 11:59:59.250.
    ts = DAY + (11 * 3600 + 59 * 60 + 59) * NS + 250_000_000
    assert book.ts_event == quote.ts_event == ts != SENT
    assert (book.first_update_id, book.sub_seq, quote.sub_seq) == (7, 0, 1)
    assert (book.stream, book.session, book.seq, book.ts_recv) == ("lp-alpha", 42, 1, SENT + NS)


def test_incremental_reads_symbol_inside_each_entry() -> None:
    # Seed 002 bug: its X parser read msg[55] at the top level; in 4.4 each 268 entry has its own 55.
    state = PARSER.new_state()
    x = msg(
        "X",
        [
            (262, "TW-1"),
            (268, "2"),
            *entry("0", "0", "B1", "EUR/USD", "1.08216", "1500000"),
            *entry("0", "1", "O1", "GBP/USD", "1.26533", "2000000"),
        ],
    )
    a, b = PARSER.parse(x, env(), state).records
    assert isinstance(a, BookUpdate) and isinstance(b, BookUpdate)
    assert (a.symbol, a.bids, a.asks, a.sub_seq) == ("EUR/USD", (Level(1_082_160_000, 1_500_000 * U),), (), 0)
    assert (b.symbol, b.bids, b.asks, b.sub_seq) == ("GBP/USD", (), (Level(1_265_330_000, 2_000_000 * U),), 1)
    assert a.ts_event == b.ts_event == T_ENTRY and not a.snapshot


def test_entry_without_symbol_uses_its_mdreqid_snapshot_symbol() -> None:
    state = PARSER.new_state()
    PARSER.parse(snapshot("TW-9", "USD/JPY"), env(), state)
    x = msg("X", [(262, "TW-9"), (268, "1"), *entry("1", "0", None, None, "151.205", "1000000")])
    (rec,) = PARSER.parse(x, env(), state).records
    assert book(rec).symbol == "USD/JPY" and book(rec).bids == (Level(151_205_000_000, 1_000_000 * U),)
    orphan = msg("X", [(262, "TW-0"), (268, "1"), *entry("1", "0", None, None, "1.1", "1")])
    with pytest.raises(ParseError, match="no Symbol"):
        PARSER.parse(orphan, env(), state)


def test_delete_by_id_change_that_moves_and_unknown_id_resync() -> None:
    state = PARSER.new_state()
    PARSER.parse(snapshot(), env(), state)
    new = msg("X", [(262, "TW-1"), (268, "1"), *entry("0", "0", "B7", "EUR/USD", "1.08216", "5")])
    PARSER.parse(new, env(), state)
    moved = msg("X", [(262, "TW-1"), (268, "1"), *entry("1", "0", "B7", "EUR/USD", "1.08217", "6")])
    (rec,) = PARSER.parse(moved, env(), state).records
    assert book(rec).bids == (Level(1_082_160_000, 0), Level(1_082_170_000, 6 * U))
    gone = msg("X", [(262, "TW-1"), (268, "1"), *entry("2", "0", "B7", "EUR/USD", None, None)])
    (rec,) = PARSER.parse(gone, env(), state).records
    assert book(rec).bids == (Level(1_082_170_000, 0),)
    # B7 is gone now: a delete naming it without a price cannot be placed -> gap + resync of EUR/USD only.
    out = PARSER.parse(gone, env(), state)
    assert out.records == [] and out.resync == ["EUR/USD"]
    assert [(g.reason, g.symbol, g.first_seq_after) for g in out.gaps] == [("book_resync", "EUR/USD", 7)]
    assert PARSER.parse(gone, env(), state).gaps == []  # one gap per hole
    PARSER.parse(snapshot(), env(), state)
    assert state.needs_resync == set()


def test_trade_entry_and_exact_decimal_text() -> None:
    x = msg(
        "X",
        [(262, "TW-1"), (268, "1"), *entry("0", "2", "T9", "EUR/USD", "1.082175", "250000.5")],
    )
    (t,) = PARSER.parse(x, env(), FixState()).records
    assert isinstance(t, Trade)
    assert (t.price, t.size, t.side, t.side_rule, t.trade_id) == (
        1_082_175_000,
        250_000_500_000_000,
        "unknown",
        "none",
        "T9",
    )


def test_control_and_errors() -> None:
    y = msg("Y", [(58, "unknown symbol BAD/SYM"), (262, "TW-2"), (281, "0")])
    assert PARSER.parse(y, env(), FixState()).control
    assert PARSER.parse(msg("0", []), env(), FixState()).control
    with pytest.raises(ParseError, match="unsupported"):
        PARSER.parse(msg("D", [(11, "x")]), env(), FixState())
    bad = bytearray(snapshot())
    bad[30] ^= 1
    with pytest.raises(ParseError):
        PARSER.parse(bytes(bad), env(), FixState())
    with pytest.raises(ParseError, match="268"):
        PARSER.parse(
            msg("W", [(55, "EUR/USD"), (262, "A"), (268, "2"), (269, "0"), (270, "1")]), env(), FixState()
        )
    with pytest.raises(ParseError, match="270"):
        PARSER.parse(
            msg("W", [(55, "EUR/USD"), (268, "1"), (269, "0"), (270, "1.1e400x")]), env(), FixState()
        )


def test_times_and_symbols() -> None:
    assert fix_time_ns("20260101", "00:00:01.5", None) == DAY + 1_500_000_000
    assert fix_time_ns(None, "00:00:01", "20260101-23:59:59.000") == DAY + NS
    assert fix_time_ns(None, None, "20260101-12:00:00.000") == SENT
    with pytest.raises(ParseError):
        fix_time_ns("2026-01-01", "00:00:01", None)
    assert fx_symbol("EURUSD") == fx_symbol("eur-usd") == fx_symbol("EUR/USD") == "EUR/USD"
    with pytest.raises(ParseError):
        fx_symbol("BTCUSDT")
