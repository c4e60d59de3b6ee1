"""Databento parser: every shared DBN file, exact field mapping, encoder-generated streams, sequence gaps."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import databento_dbn as dbn
import pytest

from tickwire.contract.codec import Codec
from tickwire.contract.envelope import Envelope
from tickwire.contract.parser import ParseError
from tickwire.contract.records import Bar, BookUpdate, Instrument, Quote, Trade
from tickwire.normalize.parse_cli import dbn_items
from tickwire.vendors.databento.parser import PARSER, UNDEF_PRICE

DBN_DIR = Path("/work/shared/data/dbn")
FILES = sorted(p for p in DBN_DIR.glob("*.dbn*")) if DBN_DIR.is_dir() else []
ENV = Envelope("databento", "replay.GLBX.MDP3", 5, 1, 1_900_000_000_000_000_000, "dbn")
DAY0 = 1_609_113_600_000_000_000  # 2020-12-28T00:00Z


def parse_file(path: Path, batch: int = 1000) -> list[Any]:
    state = PARSER.new_state()
    out: list[Any] = []
    for _n, payload, _stream, _ts in dbn_items(path.read_bytes(), batch):
        res = PARSER.parse(payload, ENV, state)
        out += res.records
    return out


@pytest.mark.skipif(not FILES, reason="no shared DBN files")
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_shared_file_parses_and_round_trips(path: Path) -> None:
    codec = Codec()
    whole = PARSER.parse(path.read_bytes(), ENV, PARSER.new_state())
    for rec in whole.records:
        assert codec.decode(codec.encode(rec)) == rec
        assert 946_684_800 * 10**9 < rec.ts_event < 4_102_444_800 * 10**9
    one_by_one = parse_file(path, batch=1)  # every single-record message decodes alone
    assert [(type(r), r.ts_event, r.symbol) for r in one_by_one] == [
        (type(r), r.ts_event, r.symbol) for r in whole.records
    ]
    if "statistics" in path.name or "status" in path.name or "mbo" in path.name:
        assert whole.control and not whole.records
    else:
        assert whole.records


def test_trades_exact() -> None:
    recs = parse_file(DBN_DIR / "test_data.trades.v3.dbn.zst")
    t = recs[0]
    assert isinstance(t, Trade)
    assert (t.symbol, t.asset_class, t.price, t.size, t.side, t.side_rule) == (
        "ESH1",
        "future",
        3_720_250_000_000,
        5_000_000_000,
        "sell",
        "vendor",
    )
    assert (t.ts_event, t.ts_recv) == (1_609_160_400_098_821_953, 1_609_160_400_099_150_057)
    assert (t.source, t.stream, t.session, t.seq, t.sub_seq) == ("databento", "replay.GLBX.MDP3", 5, 1, 0)


def test_tbbo_gives_trade_and_quote() -> None:
    recs = parse_file(DBN_DIR / "test_data.tbbo.v3.dbn.zst")
    assert [type(r) for r in recs[:2]] == [Trade, Quote]
    q = recs[1]
    assert (q.bid_price, q.bid_size, q.ask_price, q.ask_size) == (
        3_720_250_000_000,
        26 * 10**9,
        3_720_500_000_000,
        7 * 10**9,
    )


def test_mbp10_book() -> None:
    b = parse_file(DBN_DIR / "test_data.mbp-10.dbn")[0]
    assert isinstance(b, BookUpdate)
    assert (b.snapshot, b.depth, len(b.bids), len(b.asks)) == (True, 10, 10, 10)
    assert (b.bids[0].price, b.bids[0].size, b.bids[0].count) == (3_720_250_000_000, 24 * 10**9, 15)
    assert (b.asks[9].price, b.asks[9].count) == (3_722_750_000_000, 26)


def test_ohlcv_open_time_and_close_as_ts_recv() -> None:
    bars = parse_file(DBN_DIR / "test_data.ohlcv-1m.v3.dbn.zst")
    b = bars[0]
    assert isinstance(b, Bar)
    assert (b.timeframe, b.ts_event, b.ts_recv) == (
        "1m",
        1_609_160_400_000_000_000,
        1_609_160_460_000_000_000,
    )
    assert (b.open, b.high, b.close, b.volume) == (
        372_025 * 10**9,
        372_150 * 10**9,
        372_100 * 10**9,
        353 * 10**9,
    )


def test_definition() -> None:
    recs = parse_file(DBN_DIR / "test_data.definition.v3.dbn.zst")
    i = recs[0]
    assert isinstance(i, Instrument)
    assert (i.symbol, i.raw_symbol, i.instrument_id, i.asset_class, i.tick_size, i.expiry) == (
        "MSFT",
        "MSFT",
        6819,
        "equity",
        None,
        None,
    )


# ---- streams written with databento_dbn's own encoder --------------------------------------------------


def _metadata(dataset: str, schema: Any, mappings: list[tuple[str, str]], day: dt.date) -> dbn.Metadata:
    ms = [
        SimpleNamespace(
            raw_symbol=raw,
            intervals=[SimpleNamespace(start_date=day, end_date=day + dt.timedelta(days=1), symbol=iid)],
        )
        for raw, iid in mappings
    ]
    return dbn.Metadata(
        dataset=dataset,
        start=DAY0,
        stype_in=dbn.SType.RAW_SYMBOL,
        stype_out=dbn.SType.INSTRUMENT_ID,
        schema=schema,
        symbols=[m[0] for m in mappings],
        partial=[],
        not_found=[],
        mappings=ms,
        end=DAY0 + 86_400 * 10**9,
    )


def _trade(iid: int, seq: int, side: Any, price: int = 3_720_250_000_000, ts: int = DAY0 + 10**12) -> bytes:
    return bytes(
        dbn.TradeMsg(
            publisher_id=1,
            instrument_id=iid,
            ts_event=ts,
            price=price,
            size=3,
            side=side,
            depth=0,
            ts_recv=ts + 500,
            flags=dbn.F_LAST,
            ts_in_delta=100,
            sequence=seq,
            action=dbn.Action.TRADE,
        )
    )


def test_generated_trades_sides_and_symbols() -> None:
    md = _metadata(
        "GLBX.MDP3", dbn.Schema.TRADES, [("ESH1", "5482"), ("NQH1", "6319")], dt.date(2020, 12, 28)
    )
    payload = (
        md.encode()
        + _trade(5482, 1, dbn.Side.BID)
        + _trade(6319, 2, dbn.Side.ASK)
        + _trade(5482, 3, dbn.Side.NONE)
    )
    out = PARSER.parse(payload, ENV, PARSER.new_state())
    assert [(r.symbol, r.side, r.side_rule, r.sub_seq) for r in out.records] == [
        ("ESH1", "buy", "vendor", 0),
        ("NQH1", "sell", "vendor", 1),
        ("ESH1", "unknown", "none", 2),
    ]


def test_generated_option_symbols_and_equity_dataset() -> None:
    md = _metadata("OPRA.PILLAR", dbn.Schema.TRADES, [("SPY   251216C00676000", "77")], dt.date(2020, 12, 28))
    t = PARSER.parse(
        md.encode() + _trade(77, 1, dbn.Side.BID, price=1_230_000_000), ENV, PARSER.new_state()
    ).records[0]
    assert (t.symbol, t.asset_class, t.price) == ("SPY251216C00676000", "option", 1_230_000_000)
    md = _metadata("XNAS.ITCH", dbn.Schema.TRADES, [("AAPL", "9")], dt.date(2020, 12, 28))
    t = PARSER.parse(md.encode() + _trade(9, 1, dbn.Side.BID), ENV, PARSER.new_state()).records[0]
    assert (t.symbol, t.asset_class) == ("AAPL", "equity")


def test_unmapped_instrument_and_garbage_rejected() -> None:
    md = _metadata("GLBX.MDP3", dbn.Schema.TRADES, [("ESH1", "5482")], dt.date(2020, 12, 28))
    with pytest.raises(ParseError, match="no symbol mapping"):
        PARSER.parse(md.encode() + _trade(1, 1, dbn.Side.BID), ENV, PARSER.new_state())
    with pytest.raises(ParseError):
        PARSER.parse(b"not dbn at all", ENV, PARSER.new_state())
    with pytest.raises(ParseError):
        PARSER.parse(md.encode()[:20], ENV, PARSER.new_state())


def test_sequence_gap_only_when_contiguous() -> None:
    md = _metadata("GLBX.MDP3", dbn.Schema.TRADES, [("ESH1", "5482")], dt.date(2020, 12, 28)).encode()
    msgs = [
        md + _trade(5482, 1, dbn.Side.BID),
        md + _trade(5482, 2, dbn.Side.BID),
        md + _trade(5482, 9, dbn.Side.BID),
    ]
    loose = PARSER.new_state()
    assert not [g for m in msgs for g in PARSER.parse(m, ENV, loose).gaps]
    strict = PARSER.new_state({"contiguous_sequence": True})
    gaps = [g for m in msgs for g in PARSER.parse(m, ENV, strict).gaps]
    assert [(g.symbol, g.reason, g.last_seq_before, g.first_seq_after) for g in gaps] == [
        ("ESH1", "vendor_seq_jump", 2, 9)
    ]
    PARSER.parse(md + _trade(5482, 4, dbn.Side.BID), ENV, strict)
    assert strict.seq_regressions == 1


def test_mbp1_undefined_side_is_zero() -> None:
    md = _metadata("GLBX.MDP3", dbn.Schema.MBP_1, [("ESH1", "5482")], dt.date(2020, 12, 28)).encode()
    lv = dbn.BidAskPair(bid_px=UNDEF_PRICE, ask_px=3_720_500_000_000, bid_sz=0, ask_sz=4, bid_ct=0, ask_ct=1)
    rec = dbn.MBP1Msg(
        publisher_id=1,
        instrument_id=5482,
        ts_event=DAY0 + 1,
        price=3_720_500_000_000,
        size=4,
        action=dbn.Action.ADD,
        side=dbn.Side.ASK,
        depth=0,
        ts_recv=DAY0 + 2,
        flags=0,
        ts_in_delta=0,
        sequence=1,
        levels=lv,
    )
    (q,) = PARSER.parse(md + bytes(rec), ENV, PARSER.new_state()).records
    assert isinstance(q, Quote)
    assert (q.bid_price, q.bid_size, q.ask_price, q.ask_size) == (0, 0, 3_720_500_000_000, 4 * 10**9)
