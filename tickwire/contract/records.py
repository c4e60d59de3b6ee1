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
    tape: str | None = None  # US equities: consolidated tape (vendor's code)
    trf_id: str | None = None  # off-exchange prints: Trade Reporting Facility id
    trf_ts: int | None = None  # ... and its receive time, ns


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


# ---- analytics snapshots of REST vendors (option chains with greeks, news sentiment, technicals) --------
# Amounts (prices, sizes, greeks, scores, indicator values) are ints in 1e-9 units; a value the vendor
# does not give is None (absent), never NaN.


class OptionContract(msgspec.Struct, kw_only=True, frozen=True):
    """One row of an option chain."""

    contract_id: str
    underlying: str
    expiry: dt.date
    strike: int
    right: OptionRight
    last: int | None = None
    mark: int | None = None
    bid: int | None = None
    bid_size: int | None = None
    ask: int | None = None
    ask_size: int | None = None
    volume: int | None = None
    open_interest: int | None = None
    quote_date: dt.date | None = None
    implied_volatility: int | None = None
    delta: int | None = None
    gamma: int | None = None
    theta: int | None = None
    vega: int | None = None
    rho: int | None = None


ChainKind = Literal["realtime", "historical"]


class OptionChain(Canonical, kw_only=True, frozen=True):
    """A whole option chain of one underlying (``symbol``) as answered at ``ts_event``; may be empty."""

    kind: ChainKind
    greeks_requested: bool = False
    as_of: dt.date | None = None  # historical: the session the chain is of
    contracts: tuple[OptionContract, ...] = ()


class TickerSentiment(msgspec.Struct, kw_only=True, frozen=True):
    ticker: str
    relevance: int
    score: int
    label: str


class NewsArticle(msgspec.Struct, kw_only=True, frozen=True):
    url: str
    title: str
    time_published: int  # ns since the Unix epoch (UTC)
    source: str
    source_domain: str | None = None
    category: str | None = None
    authors: tuple[str, ...] = ()
    summary: str = ""
    topics: dict[str, int] = {}  # topic -> relevance
    overall_score: int | None = None
    overall_label: str | None = None
    tickers: tuple[TickerSentiment, ...] = ()


class NewsSentiment(Canonical, kw_only=True, frozen=True):
    """One news-sentiment feed answer for ``symbol`` (the requested tickers), newest first as sent."""

    articles: tuple[NewsArticle, ...] = ()


class IndicatorPoint(Canonical, kw_only=True, frozen=True):
    """One point of a technical indicator series; ``ts_event`` is the point's time in UTC."""

    indicator: str  # RSI, MACD, BBANDS, ATR, ...
    interval: str  # daily, 60min, ...
    params: dict[str, str] = {}  # the request's parameters (time_period, series_type, ...)
    values: dict[str, int] = {}  # value name -> amount (RSI, MACD_Signal, Real Upper Band, ...)


class Heartbeat(msgspec.Struct, kw_only=True, frozen=True):
    component: str
    instance: str
    ts: int
    status: str
    stats: dict[str, str] = {}


AnalyticsRecord = OptionChain | NewsSentiment | IndicatorPoint
Record = Trade | Quote | Bar | BookUpdate | Instrument | AnalyticsRecord
