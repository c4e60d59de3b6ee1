"""tickwire.contract.fast_decode returns exactly what Codec.decode returns, for every record type, and defers
to it (same error) for anything corrupt."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tickwire.contract.codec import LOCAL_IDS, Codec, CodecError, Subscription, schema_name
from tickwire.contract.exact import MAX_ABS
from tickwire.contract.fast_decode import FastDecoder, compile_decoder
from tickwire.contract.records import (
    Bar,
    BookUpdate,
    Gap,
    Heartbeat,
    IndicatorPoint,
    Instrument,
    Level,
    NewsArticle,
    NewsSentiment,
    OptionChain,
    OptionContract,
    Quote,
    TickerSentiment,
    Trade,
)

BASE: dict[str, Any] = dict(
    asset_class="equity", source="alpaca", stream="stocks.iex", session=1_732_000_000_123_456_789, seq=7
)
TS = 1_732_224_000_123_456_789


def records() -> list[Any]:
    return [
        Trade(symbol="AAPL", ts_event=TS, ts_recv=TS + 1, price=150_250_000_000, size=100 * 10**9, **BASE),
        Trade(
            symbol="SPY251216C00676000",
            venue="OPRA",
            sub_seq=3,
            ts_event=-5,
            ts_recv=0,
            price=-MAX_ABS,
            size=MAX_ABS,
            side="sell",
            side_rule="vendor",
            trade_id="t-\u00e9\u4e2d",
            conditions=("@", "T", "I"),
            underlying="SPY",
            expiry=dt.date(2025, 12, 16),
            right="C",
            strike=676 * 10**9,
            **{**BASE, "asset_class": "option", "seq": 2**62},
        ),
        Quote(
            symbol="BTC/USD",
            ts_event=TS,
            ts_recv=TS,
            bid_price=97_000 * 10**9,
            bid_size=1,
            ask_price=0,
            ask_size=-1,
            bid_venue="A",
            ask_venue=None,
            conditions=("R",),
            **BASE,
        ),
        Quote(symbol="MSFT", ts_event=1, ts_recv=2, bid_price=1, bid_size=2, ask_price=3, ask_size=4, **BASE),
        Bar(
            symbol="ES",
            timeframe="1m",
            open=1,
            high=2,
            low=-3,
            close=4,
            volume=5,
            vwap=6,
            trade_count=7,
            origin="aggregated",
            correction=True,
            ts_event=TS,
            ts_recv=TS,
            **BASE,
        ),
        Bar(
            symbol="ES",
            timeframe="5s",
            open=1,
            high=2,
            low=3,
            close=4,
            volume=0,
            ts_event=0,
            ts_recv=0,
            **BASE,
        ),
        BookUpdate(
            symbol="ETH/USD",
            ts_event=TS,
            ts_recv=TS,
            bids=tuple(Level(p * 10**9, p, p if p % 2 else None) for p in range(1, 40)),
            asks=(Level(5, 0),),
            snapshot=True,
            first_update_id=1,
            last_update_id=2**40,
            depth=10,
            **BASE,
        ),
        BookUpdate(symbol="X", ts_event=TS, ts_recv=TS, **BASE),
        Instrument(
            symbol="ESH5",
            ts_event=TS,
            ts_recv=TS,
            instrument_id=42,
            raw_symbol="ESH5",
            expiry=dt.date(1960, 3, 1),
            strike=None,
            tick_size=250_000_000,
            multiplier=50 * 10**9,
            currency="USD",
            **BASE,
        ),
        Instrument(symbol="A", ts_event=0, ts_recv=0, raw_symbol="", **BASE),
        Gap(
            source="binance",
            stream="spot",
            symbol=None,
            reason="source_seq_jump",
            detected_by="normalizer",
            last_seq_before=10,
            first_seq_after=20,
            ts_start=TS,
            ts_end=TS + 10,
            detail="x" * 300,
        ),
        Heartbeat(
            component="c", instance="i", ts=TS, status="ok", stats={"a": "1", "\u00fc": "", "n": "x" * 200}
        ),
        Heartbeat(component="c", instance="i", ts=TS, status="ok"),
        Subscription(
            vendor="alpaca", stream_type="trades", symbols=("AAPL", "MSFT"), updated_ts=TS, updated_by="me"
        ),
        Subscription(vendor="alpaca", stream_type="trades", symbols=(), updated_ts=0, updated_by=""),
        *analytics_records(),
    ]


def analytics_records() -> list[Any]:
    """Nested records (arrays of records, maps of amounts) at their extremes."""
    c = OptionContract(
        contract_id="IBM270115C00390000",
        underlying="IBM",
        expiry=dt.date(2027, 1, 15),
        strike=390 * 10**9,
        right="C",
        bid=-MAX_ABS,
        ask_size=MAX_ABS,
        quote_date=dt.date(1960, 1, 1),
        delta=-500_000_000,
        rho=1,
    )
    art = NewsArticle(
        url="https://x/\u00e9",
        title="t",
        time_published=TS,
        source="s",
        authors=("a", "b"),
        topics={"Earnings": 10**9, "\u00fc": 0},
        overall_score=-1,
        tickers=(TickerSentiment(ticker="CRYPTO:BTC", relevance=1, score=-MAX_ABS, label="Bearish"),),
    )
    return [
        OptionChain(symbol="IBM", ts_event=TS, ts_recv=TS, kind="realtime", contracts=(c, c), **BASE),
        OptionChain(
            symbol="IBM", ts_event=0, ts_recv=0, kind="historical", as_of=dt.date(2026, 1, 2), **BASE
        ),
        NewsSentiment(
            symbol="AAPL",
            ts_event=TS,
            ts_recv=TS,
            articles=(art, NewsArticle(url="", title="", time_published=0, source="")),
            **BASE,
        ),
        NewsSentiment(symbol="AAPL", ts_event=TS, ts_recv=TS, **BASE),
        IndicatorPoint(
            symbol="IBM",
            ts_event=TS,
            ts_recv=TS,
            indicator="BBANDS",
            interval="60min",
            params={"time_period": "20"},
            values={"Real Upper Band": MAX_ABS, "Real Lower Band": -1},
            **BASE,
        ),
        IndicatorPoint(symbol="IBM", ts_event=TS, ts_recv=TS, indicator="RSI", interval="daily", **BASE),
    ]


def test_every_record_type_is_covered() -> None:
    assert {schema_name(r) for r in records()} == set(LOCAL_IDS)


@pytest.mark.parametrize("rec", records(), ids=lambda r: type(r).__name__)
def test_fast_path_equals_codec_decode(rec: Any) -> None:
    codec = Codec()
    data = codec.encode(rec)
    fast = compile_decoder(schema_name(rec))(data)  # the generated function itself, no fallback
    assert fast == codec.decode(data) == rec
    assert type(fast) is type(rec)
    assert FastDecoder().decode(data) == rec


def _outcome(fn: Any, data: bytes) -> Any:
    try:
        return ("ok", fn(data))
    except CodecError as exc:
        return ("err", str(exc))


@pytest.mark.parametrize("rec", records()[:8:2], ids=lambda r: type(r).__name__)
def test_corrupt_bodies_give_codec_decode_outcome(rec: Any) -> None:
    codec, fast = Codec(), FastDecoder()
    data = codec.encode(rec)
    variants = [data[:n] for n in range(len(data))] + [data + b"\x00", data + b"junk"]
    variants += [
        data[:i] + bytes([b]) + data[i + 1 :] for i in range(5, len(data)) for b in (0x03, 0x80, 0xFF)
    ]
    for v in variants:
        assert _outcome(fast.decode, v) == _outcome(codec.decode, v), v


@pytest.mark.parametrize("rec", analytics_records()[::2], ids=lambda r: type(r).__name__)
def test_corrupt_nested_bodies_give_codec_decode_outcome(rec: Any) -> None:
    codec, fast = Codec(), FastDecoder()
    data = codec.encode(rec)
    variants = [data[:n] for n in range(len(data))] + [data + b"\x00"]
    variants += [data[:i] + bytes([b]) + data[i + 1 :] for i in range(5, len(data)) for b in (0x03, 0xFF)]
    for v in variants:
        assert _outcome(fast.decode, v) == _outcome(codec.decode, v), v


def test_unknown_schema_id_is_codec_decodes_error() -> None:
    data = b"\x00\x00\x00\x00\x63abc"
    assert _outcome(FastDecoder().decode, data) == _outcome(Codec().decode, data)
    assert _outcome(FastDecoder().decode, data)[0] == "err"
