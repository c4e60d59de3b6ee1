"""Canonical records <-> the dicts fastavro reads and writes, and the JSON view of a record.

Part of the codec (``tickwire.contract.codec`` re-exports the public names). The datum dicts match
:func:`~tickwire.contract.codec_schema.plain_schema`: amounts as two's-complement big-endian unscaled
ints in bytes (the encoding of ``decimal(38, 9)``), dates as days since the epoch. The hot path never
builds these dicts (see ``codec_fast``); decoding and schema validation in tests do.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from tickwire.contract.codec_schema import CLASS_TO_NAME, NESTED, TABLE, CodecError, schema_name
from tickwire.contract.exact import MAX_ABS, format_units
from tickwire.contract.records import Bar, BookUpdate, Level, Quote, Trade

_EPOCH_ORD = dt.date(1970, 1, 1).toordinal()
_CLASS_TO_NAME = CLASS_TO_NAME
_TABLE = TABLE


def amount_bytes(n: int) -> bytes:
    """An amount in 1e-9 units as the unscaled two's-complement bytes of decimal(38, 9)."""
    if not -MAX_ABS <= n <= MAX_ABS:
        raise CodecError(f"amount {n} exceeds decimal(38, 9)")
    return n.to_bytes((n.bit_length() + 8) // 8, "big", signed=True)


def _units(b: bytes) -> int:
    return int.from_bytes(b, "big", signed=True)


def _levels_out(levels: tuple[Level, ...]) -> list[dict[str, Any]]:
    return [
        {"price": amount_bytes(lv.price), "size": amount_bytes(lv.size), "count": lv.count} for lv in levels
    ]


def _levels_in(levels: list[dict[str, Any]]) -> tuple[Level, ...]:
    return tuple(Level(_units(lv["price"]), _units(lv["size"]), lv["count"]) for lv in levels)


_asdict = msgspec.structs.asdict

# Amount fields per schema (required, optional); dates are optional everywhere.
_AMOUNTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Trade": (("price", "size"), ("strike",)),
    "Quote": (("bid_price", "bid_size", "ask_price", "ask_size"), ()),
    "Bar": (("open", "high", "low", "close", "volume"), ("vwap",)),
    "Instrument": ((), ("strike", "tick_size", "multiplier")),
}
_DATES: dict[str, tuple[str, ...]] = {"Trade": ("expiry",), "Instrument": ("expiry",)}


def _to_datum_trade(r: Trade) -> dict[str, Any]:
    d = _asdict(r)
    d["price"] = amount_bytes(r.price)
    d["size"] = amount_bytes(r.size)
    if r.strike is not None:
        d["strike"] = amount_bytes(r.strike)
    if r.expiry is not None:
        d["expiry"] = r.expiry.toordinal() - _EPOCH_ORD
    return d


def _to_datum_quote(r: Quote) -> dict[str, Any]:
    d = _asdict(r)
    d["bid_price"] = amount_bytes(r.bid_price)
    d["bid_size"] = amount_bytes(r.bid_size)
    d["ask_price"] = amount_bytes(r.ask_price)
    d["ask_size"] = amount_bytes(r.ask_size)
    return d


def _to_datum_bar(r: Bar) -> dict[str, Any]:
    d = _asdict(r)
    d["open"] = amount_bytes(r.open)
    d["high"] = amount_bytes(r.high)
    d["low"] = amount_bytes(r.low)
    d["close"] = amount_bytes(r.close)
    d["volume"] = amount_bytes(r.volume)
    if r.vwap is not None:
        d["vwap"] = amount_bytes(r.vwap)
    return d


def _to_datum_book(r: BookUpdate) -> dict[str, Any]:
    d = _asdict(r)
    d["bids"] = _levels_out(r.bids)
    d["asks"] = _levels_out(r.asks)
    return d


def _to_datum_generic(r: Any) -> dict[str, Any]:
    name = _CLASS_TO_NAME[type(r)]
    if name in NESTED:
        from tickwire.contract import codec_nested

        return codec_nested.to_datum(name, r)
    d = _asdict(r)
    req, opt = _AMOUNTS.get(name, ((), ()))
    for k in req:
        d[k] = amount_bytes(d[k])
    for k in opt:
        if d[k] is not None:
            d[k] = amount_bytes(d[k])
    for k in _DATES.get(name, ()):
        if d[k] is not None:
            d[k] = d[k].toordinal() - _EPOCH_ORD
    return d


_TO_DATUM: dict[type[Any], Any] = {
    Trade: _to_datum_trade,
    Quote: _to_datum_quote,
    Bar: _to_datum_bar,
    BookUpdate: _to_datum_book,
}


def avro_datum(record: Any) -> dict[str, Any]:
    """The dict fastavro writes with :func:`plain_schema` (amounts as two's-complement bytes)."""
    fn = _TO_DATUM.get(type(record), _to_datum_generic)
    try:
        datum: dict[str, Any] = fn(record)
    except KeyError:
        raise CodecError(f"not a canonical record: {type(record).__name__}") from None
    return datum


def from_datum(name: str, d: dict[str, Any]) -> Any:
    """Inverse of :func:`avro_datum` for the plain-schema dict of record ``name``."""
    if name in NESTED:
        from tickwire.contract import codec_nested

        return codec_nested.from_datum(name, d)
    cls = _TABLE[name][1]
    req, opt = _AMOUNTS.get(name, ((), ()))
    for k in req:
        d[k] = _units(d[k])
    for k in opt:
        if d[k] is not None:
            d[k] = _units(d[k])
    for k in _DATES.get(name, ()):
        if d[k] is not None:
            d[k] = dt.date.fromordinal(d[k] + _EPOCH_ORD)
    if name == "BookUpdate":
        d["bids"] = _levels_in(d["bids"])
        d["asks"] = _levels_in(d["asks"])
    for k in ("conditions", "symbols"):
        if k in d:
            d[k] = tuple(d[k])
    return cls(**d)


# ---- JSON view ------------------------------------------------------------------------------------


def to_json_dict(record: Any) -> dict[str, Any]:
    """Field names as in records.py; amounts as exact plain decimal strings, timestamps int ns,
    dates ISO, book levels as {"price", "size", "count"}; plus ``"schema": <record name>``."""
    name = schema_name(record)
    if name in NESTED:
        from tickwire.contract import codec_nested

        return codec_nested.to_json_dict(name, record)
    d = _asdict(record)
    req, opt = _AMOUNTS.get(name, ((), ()))
    for k in req:
        d[k] = format_units(d[k])
    for k in opt:
        if d[k] is not None:
            d[k] = format_units(d[k])
    for k in _DATES.get(name, ()):
        if d[k] is not None:
            d[k] = d[k].isoformat()
    if name == "BookUpdate":
        for side in ("bids", "asks"):
            d[side] = [
                {"price": format_units(lv.price), "size": format_units(lv.size), "count": lv.count}
                for lv in d[side]
            ]
    for k in ("conditions", "symbols"):
        if k in d:
            d[k] = list(d[k])
    if name == "Heartbeat":
        d["stats"] = dict(d["stats"])
    d["schema"] = name
    return d
