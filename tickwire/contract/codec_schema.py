"""The canonical Avro schemas: which record class has which schema file and local id, and how to load them.

Part of the codec (``tickwire.contract.codec`` re-exports everything here). Schemas live in
``schemas/*.avsc`` (namespace ``io.tickwire.canonical``); amounts are registered as ``decimal(38,9)`` on
``bytes`` and dates as ``date`` on ``int``. :func:`plain_schema` strips those logical types (same bytes on
the wire) for the fastavro reader, which then hands over plain bytes / ints the codec converts itself.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import msgspec

from tickwire.contract import records
from tickwire.resources import schema_dir

NAMESPACE = "io.tickwire.canonical"
SCHEMA_DIR = schema_dir()


class Subscription(msgspec.Struct, kw_only=True, frozen=True):
    """Desired subscriptions of one (vendor, stream_type); value of the compacted control.subscriptions."""

    vendor: str
    stream_type: str
    symbols: tuple[str, ...]
    updated_ts: int  # ns since the Unix epoch
    updated_by: str


AnyRecord = (
    records.Trade
    | records.Quote
    | records.Bar
    | records.BookUpdate
    | records.Instrument
    | records.Gap
    | records.Heartbeat
    | Subscription
    | records.AnalyticsRecord
)

# schema name -> (file stem, class, local id). Local ids are part of the offline wire contract: never reuse.
TABLE: dict[str, tuple[str, type[Any], int]] = {
    "Trade": ("trade", records.Trade, 1),
    "Quote": ("quote", records.Quote, 2),
    "Bar": ("bar", records.Bar, 3),
    "BookUpdate": ("book_update", records.BookUpdate, 4),
    "Instrument": ("instrument", records.Instrument, 5),
    "Gap": ("gap", records.Gap, 6),
    "Heartbeat": ("heartbeat", records.Heartbeat, 7),
    "Subscription": ("subscription", Subscription, 8),
    "OptionChain": ("option_chain", records.OptionChain, 9),
    "NewsSentiment": ("news_sentiment", records.NewsSentiment, 10),
    "IndicatorPoint": ("indicator_point", records.IndicatorPoint, 11),
}
LOCAL_IDS: dict[str, int] = {name: t[2] for name, t in TABLE.items()}
# Records with nested records / maps of amounts: converted by walking their schema (``codec_nested``).
NESTED: frozenset[str] = frozenset({"OptionChain", "NewsSentiment", "IndicatorPoint"})
CLASS_TO_NAME: dict[type[Any], str] = {t[1]: name for name, t in TABLE.items()}


class CodecError(ValueError):
    """Bytes that are not a decodable canonical record, or a record that cannot be encoded."""


def schema_name(record: Any) -> str:
    try:
        return CLASS_TO_NAME[type(record)]
    except KeyError:
        raise CodecError(f"not a canonical record: {type(record).__name__}") from None


def load_schema(name: str) -> dict[str, Any]:
    """The registered (logical-typed) schema of a record name, as JSON."""
    schema: dict[str, Any] = json.loads((SCHEMA_DIR / f"{TABLE[name][0]}.avsc").read_text())
    return schema


def plain_schema(schema: Any) -> Any:
    """Copy of a schema with decimal/date logical types stripped to their base types (same encoding)."""
    if isinstance(schema, list):
        return [plain_schema(s) for s in schema]
    if isinstance(schema, dict):
        if "logicalType" in schema and schema.get("type") in ("bytes", "int", "long", "fixed"):
            base = {k: v for k, v in schema.items() if k not in ("logicalType", "precision", "scale")}
            return base["type"] if set(base) == {"type"} else base
        out = {}
        for k, v in schema.items():
            out[k] = plain_schema(v) if k in ("type", "items", "values", "fields") else v
        return out
    return copy.deepcopy(schema)
