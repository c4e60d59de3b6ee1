"""Schema-driven record <-> datum conversion for records with nested records, arrays and maps.

Part of the codec (``codec_datum`` delegates the record names in ``codec_schema.NESTED`` here): the
analytics records (option chains of contracts, news feeds of articles of tickers, indicator points with
value maps) hold amounts and dates at any depth, so their conversion walks the schema instead of naming
fields. Three views, as for the flat records: the plain-schema datum fastavro writes (amounts as
two's-complement bytes, dates as days), the record back from such a datum, and the JSON view (amounts
as exact decimal strings, dates ISO).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from tickwire.contract.codec_datum import amount_bytes
from tickwire.contract.codec_schema import TABLE, load_schema
from tickwire.contract.exact import format_units
from tickwire.contract.records import NewsArticle, OptionContract, TickerSentiment

_EPOCH_ORD = dt.date(1970, 1, 1).toordinal()
# Classes of the nested (non-top-level) records, by schema name.
NESTED_CLASSES: dict[str, type[Any]] = {
    "OptionContract": OptionContract,
    "NewsArticle": NewsArticle,
    "TickerSentiment": TickerSentiment,
}

Leaf = Callable[[Any], Any]


def _walk(schema: Any, v: Any, amount: Leaf, date: Leaf, build: Any, named: dict[str, Any]) -> Any:
    """Convert value ``v`` of ``schema``; ``build(name, fields)`` makes a record (dict or Struct)."""
    if isinstance(schema, list):  # ["null", X]
        return None if v is None else _walk(schema[1], v, amount, date, build, named)
    if isinstance(schema, str):
        return _walk(named[schema], v, amount, date, build, named) if schema in named else v
    logical = schema.get("logicalType")
    if logical == "decimal":
        return amount(v)
    if logical == "date":
        return date(v)
    t = schema["type"]
    if t == "record":
        named[schema["name"]] = schema
        get = v.get if isinstance(v, dict) else lambda k: getattr(v, k)
        fields = {
            f["name"]: _walk(f["type"], get(f["name"]), amount, date, build, named) for f in schema["fields"]
        }
        return build(schema["name"], fields)
    if t == "array":
        items = [_walk(schema["items"], x, amount, date, build, named) for x in v]
        return items if build is _as_dict else tuple(items)
    if t == "map":
        return {k: _walk(schema["values"], x, amount, date, build, named) for k, x in v.items()}
    return _walk(t, v, amount, date, build, named)


def _as_dict(_name: str, fields: dict[str, Any]) -> dict[str, Any]:
    return fields


def _as_struct(name: str, fields: dict[str, Any]) -> Any:
    cls = NESTED_CLASSES.get(name) or TABLE[name][1]
    return cls(**fields)


_SCHEMAS: dict[str, dict[str, Any]] = {}


def _schema(name: str) -> dict[str, Any]:
    s = _SCHEMAS.get(name)
    if s is None:
        s = _SCHEMAS[name] = load_schema(name)
    return s


def _days(d: dt.date) -> int:
    return d.toordinal() - _EPOCH_ORD


def _from_days(n: int) -> dt.date:
    return dt.date.fromordinal(n + _EPOCH_ORD)


def _units(b: bytes) -> int:
    return int.from_bytes(b, "big", signed=True)


def to_datum(name: str, record: Any) -> dict[str, Any]:
    """The plain-schema dict fastavro writes for record ``name``."""
    out: dict[str, Any] = _walk(_schema(name), record, amount_bytes, _days, _as_dict, {})
    return out


def from_datum(name: str, datum: dict[str, Any]) -> Any:
    """The record back from a plain-schema datum."""
    return _walk(_schema(name), datum, _units, _from_days, _as_struct, {})


def to_json_dict(name: str, record: Any) -> dict[str, Any]:
    """The JSON view: amounts as exact decimal strings, dates ISO, nested records as dicts."""
    out: dict[str, Any] = _walk(_schema(name), record, format_units, dt.date.isoformat, _as_dict, {})
    out["schema"] = name
    return out
