"""Canonical records: the product of tickwire.

In memory, prices and sizes are ints in 1e-9 units (see tickwire.contract.exact); timestamps are ints in ns
since the Unix epoch. Each record traces back to its raw record through (source, stream, session, seq)
and its index `sub_seq` within that raw record. The Avro schemas in schemas/ mirror these classes
field by field (tests enforce it).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec

AssetClass = Literal["equity", "crypto", "option", "future", "fx"]
Side = Literal["buy", "sell", "unknown"]
# How `side` was obtained: "vendor" (vendor states the aggressor), "maker_inverted" (vendor states the
# maker's side, aggressor is the opposite), "quote_rule" (inferred from the prevailing quote),
# "none" (no rule applied: side is unknown).
SideRule = Literal["vendor", "maker_inverted", "quote_rule", "none"]
Timeframe = Literal["1s", "5s", "1m", "1h", "1d"]
BarOrigin = Literal["vendor", "aggregated"]
OptionRight = Literal["C", "P"]


class Canonical(msgspec.Struct, kw_only=True, frozen=True):
    symbol: str
    asset_class: AssetClass
    source: str
    venue: str | None = None
    stream: str
    session: int
    seq: int
    sub_seq: int = 0
    ts_event: int
    ts_recv: int


class Trade(Canonical, kw_only=True, frozen=True):
    price: int
    size: int
    side: Side = "unknown"
    side_rule: SideRule = "none"
    trade_id: str | None = None
    conditions: tuple[str, ...] = ()
    underlying: str | None = None
    expiry: dt.date | None = None
    right: OptionRight | None = None
    strike: int | None = None


class Quote(Canonical, kw_only=True, frozen=True):
    bid_price: int
    bid_size: int
    ask_price: int
    ask_size: int
    bid_venue: str | None = None
    ask_venue: str | None = None
    conditions: tuple[str, ...] = ()


class Bar(Canonical, kw_only=True, frozen=True):
    """ts_event is the bar's OPEN time."""

    timeframe: Timeframe
    open: int
    high: int
    low: int
    close: int
    volume: int
    vwap: int | None = None
    trade_count: int | None = None
    origin: BarOrigin = "vendor"
    correction: bool = False


class Level(msgspec.Struct, frozen=True, array_like=True):
    price: int
    size: int  # 0 = remove the level (diffs)
    count: int | None = None


class BookUpdate(Canonical, kw_only=True, frozen=True):
    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()
    snapshot: bool = False
    first_update_id: int | None = None
    last_update_id: int | None = None
    depth: int | None = None  # levels per side for fixed-depth snapshots (MBP-10: 10)


class Instrument(Canonical, kw_only=True, frozen=True):
    """An instrument definition (e.g. DBN definition records); keyed by symbol on a compacted topic."""

    instrument_id: int | None = None
    raw_symbol: str
    underlying: str | None = None
    expiry: dt.date | None = None
    right: OptionRight | None = None
    strike: int | None = None
    tick_size: int | None = None
    multiplier: int | None = None
    currency: str | None = None


GapReason = Literal["reconnect", "source_seq_jump", "vendor_seq_jump", "book_resync", "dropped"]


class Gap(msgspec.Struct, kw_only=True, frozen=True):
    """Continuity was lost: downstream can see the hole and backfill it."""

    source: str
    stream: str
    symbol: str | None = None
    reason: GapReason
    detected_by: Literal["producer", "normalizer"]
    last_seq_before: int | None = None
    first_seq_after: int | None = None
    ts_start: int  # ns: last good data before the gap
    ts_end: int  # ns: first data after the gap (or detection time)
    detail: str = ""


class Heartbeat(msgspec.Struct, kw_only=True, frozen=True):
    component: str
    instance: str
    ts: int
    status: str
    stats: dict[str, str] = {}


Record = Trade | Quote | Bar | BookUpdate | Instrument
