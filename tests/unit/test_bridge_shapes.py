"""Legacy payload builders: exact JSON text, timestamps, ticker maths, books, NATS subjects and ids."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import msgspec
import orjson
import pytest

from tickwire.bridges import shapes
from tickwire.contract.exact import parse_units as u
from tickwire.contract.records import Bar, BookUpdate, Level, Quote, Trade

NS = 1_704_205_800_123_456_789  # 2024-01-02T14:30:00.123456789Z

BASE = dict(source="alpaca", stream="stocks.iex", session=17, seq=42, ts_recv=NS + 1000)


def trade(**kw: object) -> Trade:
    d: dict[str, object] = dict(
        BASE, symbol="AAPL", asset_class="equity", ts_event=NS, price=u("25.3519"), size=u("100"), venue="V"
    )
    d.update(kw)
    return Trade(**d)  # type: ignore[arg-type]


def quote(bid: str, ask: str, **kw: object) -> Quote:
    d: dict[str, object] = dict(
        BASE,
        symbol="AAPL",
        asset_class="equity",
        ts_event=NS,
        bid_price=u(bid),
        bid_size=u("3"),
        ask_price=u(ask),
        ask_size=u("4"),
    )
    d.update(kw)
    return Quote(**d)  # type: ignore[arg-type]


def _strict(data: bytes) -> object:
    def no_const(name: str) -> None:
        raise AssertionError(f"non-JSON constant {name} written")

    return json.loads(data, parse_constant=no_const)


def test_iso_from_ns_truncates_to_requested_digits() -> None:
    assert shapes.iso_from_ns(NS) == "2024-01-02T14:30:00.123Z"
    assert shapes.iso_from_ns(NS, 9) == "2024-01-02T14:30:00.123456789Z"
    assert shapes.iso_from_ns(NS, 6) == "2024-01-02T14:30:00.123456Z"
    assert shapes.iso_from_ns(NS, 0) == "2024-01-02T14:30:00Z"
    assert shapes.iso_from_ns(999_999_999) == "1970-01-01T00:00:00.999Z"


def test_trade_message_exact_json_text() -> None:
    assert shapes.trade_message(trade()) == (
        b'{"symbol":"AAPL","price":25.3519,"size":100,'
        b'"timestamp":"2024-01-02T14:30:00.123Z","tickType":"trade"}'
    )


def test_numbers_are_exact_decimal_tokens_not_float_reprs() -> None:
    # 0.1 + 0.2 style values and 9-decimal crypto sizes stay exactly as in Kafka.
    t = trade(price=u("0.3"), size=u("0.000000001"))
    text = shapes.trade_message(t)
    assert b'"price":0.3,' in text and b'"size":0.000000001,' in text
    big = trade(size=u("123456789012345678901234.5"))  # beyond int64/float precision
    assert b'"size":123456789012345678901234.5,' in shapes.trade_message(big)
    neg = trade(price=u("-1.25"))
    assert json.loads(shapes.trade_message(neg))["price"] == -1.25


def test_bar_message_exact_json_text() -> None:
    b = Bar(
        **BASE,  # type: ignore[arg-type]
        symbol="BTC/USD",
        asset_class="crypto",
        ts_event=1_704_205_800_000_000_000,
        timeframe="1m",
        open=u("42000.5"),
        high=u("42010"),
        low=u("41990.25"),
        close=u("42005.125"),
        volume=u("1.23456789"),
    )
    assert shapes.bar_message(b) == (
        b'{"symbol":"BTC/USD","timeframe":"1m","open":42000.5,"high":42010,"low":41990.25,'
        b'"close":42005.125,"volume":1.23456789,"timestamp":"2024-01-02T14:30:00.000Z"}'
    )


def test_trade_list_entry_has_venue_side_and_exact_time() -> None:
    d = json.loads(shapes.trade_list_entry(trade(side="sell")))
    assert d["venue"] == "V" and d["side"] == "sell" and d["ts_event_ns"] == NS and d["tickType"] == "trade"


def test_mid_spread_bps() -> None:
    mid, spread, bps = shapes.mid_and_spread(u("100.00"), u("100.01")) or (None, 0, None)
    assert mid == Decimal("100.005") and spread == u("0.01")
    assert bps == Decimal("1.0000")  # 0.01 / 100.005 * 1e4 = 0.9999500025.. -> 4 decimals
    _, _, bps2 = shapes.mid_and_spread(u("3"), u("3.0001")) or (None, 0, None)
    assert bps2 == Decimal("0.3333")  # 0.0001 / 3.00005 * 1e4 = 0.33332777..
    # an odd sum of units still gives an exact mid (half a nano)
    mid2, _, _ = shapes.mid_and_spread(1, 2) or (None, 0, None)
    assert mid2 == Decimal("1.5E-9")
    assert shapes.mid_and_spread(0, 2) is None


def test_ticker_json_merges_quote_and_trade_and_round_trips() -> None:
    tk = shapes.Ticker("AAPL")
    assert tk.apply_quote(*shapes.ticker_from_quote(quote("100.00", "100.01")))
    assert tk.apply_trade(u("100.005"), u("7"), NS + 5)
    text = tk.to_json()
    assert text == (
        b'{"symbol":"AAPL","bid":100,"ask":100.01,"bid_size":3,"ask_size":4,"mid":100.005,'
        b'"spread":0.01,"spread_bps":1,"last":100.005,"last_size":7,'
        b'"timestamp":"2024-01-02T14:30:00.123Z","updated_ns":' + str(NS + 5).encode() + b","
        b'"quote_ts_ns":' + str(NS).encode() + b',"last_ts_ns":' + str(NS + 5).encode() + b"}"
    )
    back = shapes.Ticker.from_json("AAPL", text)
    assert back == tk


def test_ticker_halves_only_move_forward_in_event_time() -> None:
    tk = shapes.Ticker("AAPL")
    tk.apply_quote(*shapes.ticker_from_quote(quote("10", "11", ts_event=NS + 10)))
    assert not tk.apply_quote(*shapes.ticker_from_quote(quote("9", "12", ts_event=NS)))
    assert tk.bid == u("10")
    assert tk.apply_trade(u("10.5"), 1, NS + 3)
    assert not tk.apply_trade(u("99"), 1, NS + 2)
    assert tk.last == u("10.5")


@pytest.mark.parametrize(("bid", "ask"), [("0", "100.01"), ("100", "0"), ("0", "0")])
def test_ticker_never_writes_nan_or_inf(bid: str, ask: str) -> None:
    tk = shapes.Ticker("AAPL")
    tk.apply_quote(*shapes.ticker_from_quote(quote(bid, ask)))
    d = _strict(tk.to_json())
    assert isinstance(d, dict)
    assert "mid" not in d and "spread" not in d and "spread_bps" not in d
    for v in d.values():
        assert not (isinstance(v, float) and (math.isnan(v) or math.isinf(v)))


def test_book_snapshot_then_diffs_and_top() -> None:
    b = shapes.Book()
    snap = BookUpdate(
        **BASE,  # type: ignore[arg-type]
        symbol="BTCUSDT",
        asset_class="crypto",
        ts_event=NS,
        snapshot=True,
        bids=(Level(u("100"), u("1")), Level(u("99"), u("2")), Level(u("98"), u("3"))),
        asks=(Level(u("101"), u("1")), Level(u("102"), u("2"))),
    )
    b.apply(snap)
    diff = BookUpdate(
        **BASE,  # type: ignore[arg-type]
        symbol="BTCUSDT",
        asset_class="crypto",
        ts_event=NS + 1,
        bids=(Level(u("100"), 0), Level(u("99.5"), u("5"))),
        asks=(Level(u("101"), u("0.5")),),
    )
    changed_bids, changed_asks = b.apply(diff)
    assert changed_bids == {u("100"): 0, u("99.5"): u("5")}
    assert changed_asks == {u("101"): u("0.5")}
    bids, asks = b.top(2)
    assert [(lv.price, lv.size) for lv in bids] == [(u("99.5"), u("5")), (u("99"), u("2"))]
    assert [(lv.price, lv.size) for lv in asks] == [(u("101"), u("0.5")), (u("102"), u("2"))]
    text = shapes.book_json("BTCUSDT", bids, asks, b.ts_event)
    assert text.startswith(
        b'{"symbol":"BTCUSDT","bids":[{"price":99.5,"size":5},{"price":99,"size":2}],'
        b'"asks":[{"price":101,"size":0.5},{"price":102,"size":2}],"depth":2,'
    )


def _book(asset: str, depth: int | None) -> BookUpdate:
    return BookUpdate(
        **BASE,  # type: ignore[arg-type]
        symbol="X",
        asset_class=asset,  # type: ignore[arg-type]
        ts_event=NS,
        snapshot=True,
        depth=depth,
    )


def test_subjects() -> None:
    assert shapes.subject_for(trade()) == "market.stocks.trades"
    assert shapes.subject_for(quote("1", "2")) == "market.stocks.quotes"
    assert shapes.subject_for(trade(asset_class="option")) == "market.options.trades"
    assert shapes.subject_for(trade(asset_class="future")) == "market.futures.trades"
    assert shapes.subject_for(_book("future", 10)) == "market.futures.mbp10"
    assert shapes.subject_for(trade(asset_class="crypto")) == "market.crypto.trades"
    assert shapes.subject_for(quote("1", "2", asset_class="crypto")) == "market.crypto.quotes"
    assert shapes.subject_for(_book("crypto", None)) == "market.crypto.book"
    assert shapes.subject_for(trade(asset_class="crypto"), "t1.") == "t1.market.crypto.trades"


def test_msg_id_identifies_the_canonical_record() -> None:
    assert shapes.msg_id(trade()) == "Trade:alpaca:stocks.iex:17:42:0"
    assert shapes.msg_id(trade(sub_seq=3)) != shapes.msg_id(trade())
    assert shapes.msg_id(trade(session=18)) != shapes.msg_id(trade())
    # same identity -> same id whatever the content (a re-publish after replay is a duplicate)
    assert shapes.msg_id(trade(price=u("1"))) == shapes.msg_id(trade())


def test_nats_payload_is_canonical_json_plus_event_source() -> None:
    d = orjson.loads(shapes.nats_payload(trade()))
    assert d["schema"] == "Trade" and d["price"] == "25.3519" and d["size"] == "100"
    assert d["ts_event"] == NS and d["seq"] == 42 and d["event_source"] == "alpaca"
    r = orjson.loads(shapes.nats_payload(trade(source="databento", stream="replay.glbx")))
    assert r["event_source"] == "replay"
    assert set(r) == set(d)


def test_nats_payload_equals_to_json_dict_plus_event_source_for_every_bridged_type() -> None:
    from tests.unit.test_bridge_avro_fast_decode import records
    from tickwire.contract.codec import to_json_dict

    bridged = [r for r in records() if isinstance(r, Trade | Quote | Bar | BookUpdate)]
    assert {type(r) for r in bridged} == {Trade, Quote, Bar, BookUpdate}
    for r in bridged:
        for rec in (r, msgspec.structs.replace(r, stream="replay.x")):
            ref = to_json_dict(rec)
            ref["event_source"] = shapes.event_source(rec)
            assert shapes.nats_payload(rec) == orjson.dumps(ref)
            assert shapes.nats_payload(rec) == shapes.nats_payload(rec)  # cached amount texts agree
