"""The generated encoders' caches and inline varints never change bytes: fastavro equality over varied
streams of records (repeated, interleaved and distinct values) and at every varint size edge, and values of
the wrong type still fail after an equal valid value was cached."""

from __future__ import annotations

import io
import random
from typing import Any

import fastavro
import msgspec
import pytest

from tickwire.contract.codec import Codec, CodecError, avro_datum, load_schema, plain_schema, schema_name
from tickwire.contract.records import BookUpdate, Level, Quote, Trade

BASE: dict[str, Any] = dict(
    asset_class="crypto",
    source="binance",
    stream="spot",
    session=1_700_000_000_000_000_000,
    ts_recv=1_710_239_269_140_662_000,
)


def _fastavro(record: Any) -> bytes:
    schema = fastavro.parse_schema(plain_schema(load_schema(schema_name(record))), named_schemas={})
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, avro_datum(record))
    return buf.getvalue()


def _records(n: int) -> list[Any]:
    rnd = random.Random(7)
    out: list[Any] = []
    for i in range(n):
        common = dict(
            BASE,
            symbol=rnd.choice(["BTC/USDT", "ETH/USDT", "NKN/USDT"]),
            venue=rnd.choice([None, "BINANCE"]),
            seq=rnd.choice([i, 5, 63, 64, 2**40]),
            sub_seq=rnd.choice([0, 1, 70]),
            ts_event=BASE["ts_recv"] - rnd.choice([0, 1, 10**9]),
        )
        px, sz = rnd.choice([1, 352_100_000, -5, 2**70]), rnd.choice([0, 10**9, 127, 128, -(2**70)])
        kind = i % 3
        if kind == 0:
            side = rnd.choice(["buy", "sell", "unknown"])
            out.append(Trade(**common, price=px, size=sz, side=side, trade_id=rnd.choice([None, str(i)])))
        elif kind == 1:
            out.append(Quote(**common, bid_price=px, bid_size=sz, ask_price=sz, ask_size=px, ask_venue="X"))
        else:
            levels = tuple(Level(px + j, sz, rnd.choice([None, j])) for j in range(rnd.choice([0, 1, 3])))
            out.append(
                BookUpdate(**common, bids=levels, asks=levels[:1], first_update_id=rnd.choice([None, i]))
            )
    return out


def test_caches_keep_bytes_identical() -> None:
    codec = Codec()
    records = _records(600)
    for rec in records + records:  # the second pass is served from the caches
        assert codec.encode(rec)[5:] == _fastavro(rec)


@pytest.mark.parametrize(
    "change",
    [
        {"session": 1.7e18},
        {"seq": 5.0},
        {"price": 1.0},
        {"symbol": 7},
        {"venue": ["BINANCE"]},
        {"ts_event": 1.7e18},
        {"ts_recv": 2**63},
    ],
)
def test_wrong_types_still_fail_after_equal_values_were_cached(change: dict[str, Any]) -> None:
    codec = Codec()
    good = Trade(**BASE, symbol="BTC/USDT", venue="BINANCE", seq=5, ts_event=BASE["ts_recv"], price=1, size=1)
    codec.encode(msgspec.structs.replace(good, session=1_700_000_000_000_000_000, price=10**9))
    codec.encode(msgspec.structs.replace(good, session=int(1.7e18), price=1))
    with pytest.raises(CodecError):
        codec.encode(msgspec.structs.replace(good, **change))


# Every varint size edge of the inline long encoding (2**6, 2**13, 2**27, 2**41, 2**55 on each side),
# zero, negatives (pre-epoch, zigzag through _long) and INT64 bounds, in a timestamp field (its 9-byte
# branch first), a plain long (seq), an int (depth) and optional longs (update ids).
EDGES = sorted(
    {0, -1, -(2**63), 2**63 - 1, 1_710_239_269_140_662_000}
    | {2**k + d for k in (6, 13, 27, 41, 55) for d in (-1, 0, 1)}
)


@pytest.mark.parametrize("n", EDGES)
def test_longs_encode_as_fastavro_at_every_varint_edge(n: int) -> None:
    codec = Codec()
    t = Trade(**{**BASE, "ts_recv": n}, symbol="BTC/USDT", seq=n, ts_event=n, price=1, size=1)
    book = BookUpdate(
        **{**BASE, "session": n}, symbol="BTC/USDT", seq=abs(n) % 2**63, ts_event=n,
        first_update_id=n, last_update_id=n, depth=n % 2**31,
    )  # fmt: skip
    for rec in (t, book):
        assert codec.encode(rec)[5:] == _fastavro(rec)
        assert codec.decode(codec.encode(rec)) == rec
