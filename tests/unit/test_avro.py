"""Avro codec: round trips for every canonical record, wire identity with decimal(38,9), errors."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from decimal import Decimal
from typing import Any

import fastavro
import pytest

from tickwire.contract.codec import (
    LOCAL_IDS,
    Codec,
    CodecError,
    Subscription,
    avro_datum,
    load_schema,
    plain_schema,
    schema_name,
    to_json_dict,
)
from tickwire.contract.exact import MAX_ABS
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
from tickwire.contract.routing import key_for, topic_for

BASE: dict[str, Any] = dict(
    symbol="BTC/USD",
    asset_class="crypto",
    source="alpaca",
    stream="crypto.us",
    session=1_700_000_000_000_000_000,
    seq=42,
    sub_seq=3,
    ts_event=1_710_239_268_858_228_144,
    ts_recv=1_710_239_269_140_662_000,
)
BIG = 2**64 + 12345  # beyond int64


def samples() -> list[Any]:
    return [
        Trade(**BASE, price=72_104_120_000_000, size=BIG, side="sell", side_rule="vendor", trade_id="3447"),
        Trade(
            **{**BASE, "symbol": "SPY251216C00676000", "asset_class": "option", "venue": "C"},
            price=-5,
            size=0,
            conditions=("I", "@"),
            underlying="SPY",
            expiry=dt.date(2025, 12, 16),
            right="C",
            strike=676_000_000_000,
        ),
        Trade(**BASE, price=MAX_ABS, size=-MAX_ABS),
        Quote(**BASE, bid_price=1, bid_size=2, ask_price=3, ask_size=BIG, bid_venue="V", conditions=("R",)),
        Bar(
            **BASE,
            timeframe="1m",
            open=1,
            high=2,
            low=-3,
            close=4,
            volume=10**37,
            vwap=None,
            trade_count=None,
        ),
        Bar(
            **BASE,
            timeframe="1d",
            open=1,
            high=2,
            low=3,
            close=4,
            volume=5,
            vwap=6,
            trade_count=7,
            origin="aggregated",
            correction=True,
        ),
        BookUpdate(
            **BASE,
            bids=tuple(Level(10**9 * i, i, i) for i in range(10)),
            asks=(Level(5, 0),),
            snapshot=True,
            first_update_id=1,
            last_update_id=2**62,
            depth=10,
        ),
        BookUpdate(**BASE),
        Instrument(
            **{**BASE, "symbol": "ESH1", "asset_class": "future"},
            instrument_id=5482,
            raw_symbol="ESH1",
            underlying="ES",
            expiry=dt.date(2021, 3, 19),
            tick_size=250_000_000,
            multiplier=50 * 10**9,
            currency="USD",
        ),
        Instrument(**BASE, raw_symbol="BTC-USD"),
        Gap(
            source="binance",
            stream="spot",
            symbol=None,
            reason="reconnect",
            detected_by="producer",
            ts_start=1,
            ts_end=2,
        ),
        Gap(
            source="binance",
            stream="spot",
            symbol="BTC/USDT",
            reason="vendor_seq_jump",
            detected_by="normalizer",
            last_seq_before=10,
            first_seq_after=15,
            ts_start=1,
            ts_end=2,
            detail="5 missing",
        ),
        Heartbeat(component="normalizer", instance="a", ts=3, status="ok", stats={"lag": "12"}),
        Subscription(
            vendor="alpaca", stream_type="trades", symbols=("AAPL", "MSFT"), updated_ts=4, updated_by="cli"
        ),
        *analytics_samples(),
    ]


def analytics_samples() -> list[Any]:
    """The nested analytics records: amounts and dates inside arrays of records and maps."""
    eq = {**BASE, "symbol": "IBM", "asset_class": "equity", "source": "alphavantage"}
    contract = OptionContract(
        contract_id="IBM270115P00390000",
        underlying="IBM",
        expiry=dt.date(2027, 1, 15),
        strike=390 * 10**9,
        right="P",
        mark=BIG,
        quote_date=dt.date(2026, 1, 2),
        implied_volatility=4_200_000_000,
        theta=-MAX_ABS,
    )
    article = NewsArticle(
        url="u",
        title="t",
        time_published=1_704_233_000 * 10**9,
        source="Reuters",
        topics={"Earnings": 500_000_000},
        overall_score=-420_000_000,
        tickers=(TickerSentiment(ticker="AAPL", relevance=1, score=2, label="Neutral"),),
    )
    return [
        OptionChain(**eq, kind="realtime", greeks_requested=True, contracts=(contract,)),
        OptionChain(**eq, kind="realtime"),
        NewsSentiment(**{**eq, "symbol": "AAPL"}, articles=(article,)),
        IndicatorPoint(
            **eq, indicator="MACD", interval="daily", params={"series_type": "close"}, values={"MACD": -1}
        ),
    ]


@pytest.mark.parametrize("record", samples(), ids=lambda r: type(r).__name__)
def test_round_trip(record: Any) -> None:
    codec = Codec()
    data = codec.encode(record)
    assert data[0] == 0
    assert int.from_bytes(data[1:5], "big") == LOCAL_IDS[schema_name(record)]
    assert codec.decode(data) == record


@pytest.mark.parametrize("record", samples(), ids=lambda r: type(r).__name__)
def test_wire_identical_to_logical_schema(record: Any) -> None:
    """Bytes written through the plain-bytes fast path read back as exact Decimals/dates with the
    registered schema, and the registered schema writes the same bytes."""
    name = schema_name(record)
    registered = fastavro.parse_schema(load_schema(name), named_schemas={})
    body = Codec().encode(record)[5:]
    got = fastavro.schemaless_reader(io.BytesIO(body), registered, None)
    assert isinstance(got, dict)
    for field, value in to_json_dict(record).items():
        if field == "schema":
            continue
        v = got[field]
        if isinstance(v, Decimal):
            assert v == Decimal(value), field
        elif isinstance(v, dt.date):
            assert v.isoformat() == value
        elif field in ("bids", "asks"):
            assert [(str(lv["price"].normalize()), lv["count"]) for lv in v] == [
                (str(Decimal(lv["price"]).normalize()), lv["count"]) for lv in value
            ]
    again = io.BytesIO()
    fastavro.schemaless_writer(again, registered, got)
    assert again.getvalue() == body


@pytest.mark.parametrize("record", samples(), ids=lambda r: type(r).__name__)
def test_fast_encoder_matches_fastavro(record: Any) -> None:
    schema = fastavro.parse_schema(plain_schema(load_schema(schema_name(record))), named_schemas={})
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, avro_datum(record))
    assert Codec().encode(record)[5:] == buf.getvalue()


def test_long_range() -> None:
    codec = Codec()
    for seq in (0, 63, 64, -1, -65, 2**63 - 1, -(2**63)):
        rec = Heartbeat(component="c", instance="i", ts=seq, status="ok")
        assert codec.decode(codec.encode(rec)) == rec
    with pytest.raises(CodecError, match="long"):
        codec.encode(Heartbeat(component="c", instance="i", ts=2**63, status="ok"))


def test_datum_validates_against_plain_schema() -> None:
    for record in samples():
        schema = fastavro.parse_schema(plain_schema(load_schema(schema_name(record))), named_schemas={})
        assert fastavro.validation.validate(avro_datum(record), schema, raise_errors=True)


def test_amount_beyond_decimal38_rejected() -> None:
    with pytest.raises(CodecError):
        Codec().encode(Trade(**BASE, price=MAX_ABS + 1, size=1))


def test_decode_errors() -> None:
    codec = Codec()
    good = codec.encode(samples()[0])
    with pytest.raises(CodecError, match="magic"):
        codec.decode(b"\x01" + good[1:])
    with pytest.raises(CodecError, match="magic"):
        codec.decode(b"\x00\x00")
    with pytest.raises(CodecError, match="unknown schema id 999"):
        codec.decode(b"\x00" + (999).to_bytes(4, "big") + good[5:])
    with pytest.raises(CodecError, match="corrupt"):
        codec.decode(good[:-3])
    with pytest.raises(CodecError, match="trailing"):
        codec.decode(good + b"\x00")
    with pytest.raises(CodecError):
        codec.encode(object())


def test_mock_registry_ids_shared_per_url() -> None:
    url = f"mock://tickwire-test-{uuid.uuid4().hex}"
    producer, consumer = Codec(url), Codec(url)
    recs = samples()
    blobs = [producer.encode(r) for r in recs]
    assert [consumer.decode(b) for b in blobs] == recs
    ids = {schema_name(r): int.from_bytes(b[1:5], "big") for r, b in zip(recs, blobs, strict=True)}
    assert len(set(ids.values())) == len(ids)  # one id per record type
    client = producer._client
    assert sorted(client.get_subjects()) == sorted(f"io.tickwire.canonical.{n}" for n in ids)


def test_to_json_dict() -> None:
    d = to_json_dict(samples()[1])
    assert d["schema"] == "Trade"
    assert d["price"] == "-0.000000005"
    assert d["strike"] == "676"
    assert d["expiry"] == "2025-12-16"
    assert d["conditions"] == ["I", "@"]
    assert d["ts_event"] == 1_710_239_268_858_228_144
    book = to_json_dict(samples()[6])
    assert book["bids"][1] == {"price": "1", "size": "0.000000001", "count": 1}
    assert to_json_dict(samples()[0])["size"] == "18446744073.709563961"


def test_routing() -> None:
    s = samples()
    assert topic_for(s[0]) == "crypto_trades_realtime"
    assert topic_for(s[1]) == "option_trades_realtime"
    assert topic_for(s[3]) == "crypto_quotes_realtime"
    assert topic_for(s[4]) == "crypto_bars_staging"
    assert topic_for(s[6]) == "crypto_book_realtime"
    assert topic_for(s[8]) == "instrument_definitions"
    assert topic_for(s[10]) == "tickwire.gaps"
    assert topic_for(Trade(**{**BASE, "asset_class": "equity", "symbol": "AAPL"}, price=1, size=1)) == (
        "stock_trades_realtime"
    )
    assert key_for(s[0]) == b"BTC/USD"
    assert key_for(s[10]) == b"binance/spot"
    assert key_for(s[11]) == b"BTC/USDT"
