"""Pure builders of the legacy payloads (seed 000: pub/sub JSON, seed 004: market:* keys, seed 003: NATS).

Numbers: legacy readers expect JSON numbers, so amounts are written as JSON number tokens whose text is
the exact decimal (``format_units``), e.g. ``25.3519`` -- never a float repr such as ``25.351899999``.
The token goes into the JSON text verbatim (``orjson.Fragment``). Derived values are exact decimals too:
``mid`` is exact (at most one more digit), ``spread_bps`` is rounded half-even to 4 decimals. Values that
cannot be computed (e.g. a spread with an empty side) are omitted, so NaN/inf can never be written.

Timestamps: legacy ``timestamp`` fields are UTC ISO-8601 strings as JavaScript's ``toISOString()`` writes
them (``2024-01-02T14:30:00.123Z``); ``digits`` selects 0-9 fractional digits (truncated, not rounded).
Keys that need the exact time also carry an int ns field (``*_ns``).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
import orjson

from tickwire.contract.exact import SCALE, format_units, parse_units
from tickwire.contract.records import Bar, BookUpdate, Level, Quote, Trade

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_CTX = decimal.Context(prec=80, rounding=decimal.ROUND_HALF_EVEN)
_BPS_Q = Decimal("0.0001")

# canonical timeframe -> suffix of market:{symbol}:bars:{tf} (seed 004 names "1min" and "5s")
BAR_KEY_SUFFIX: dict[str, str] = {"1s": "1s", "5s": "5s", "1m": "1min", "1h": "1h", "1d": "1d"}


_FMT: dict[int, str] = {}  # amount -> format_units text: prices and sizes repeat a lot


def fmt(units: int) -> str:
    """``format_units`` with a bounded cache."""
    text = _FMT.get(units)
    if text is None:
        if len(_FMT) >= 65536:
            _FMT.clear()
        text = _FMT[units] = format_units(units)
    return text


def num(units: int) -> orjson.Fragment:
    """A JSON number token with the exact decimal text of an amount in 1e-9 units."""
    return orjson.Fragment(fmt(units))


def _dec_num(d: Decimal) -> orjson.Fragment:
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return orjson.Fragment(text)


_ISO_BASE: dict[int, str] = {}  # whole second -> "YYYY-MM-DDTHH:MM:SS" (records cluster in time)


def iso_from_ns(ns: int, digits: int = 3) -> str:
    """UTC ISO-8601 with a ``Z`` suffix and ``digits`` fractional digits (truncated)."""
    secs, rem = divmod(ns, 1_000_000_000)
    base = _ISO_BASE.get(secs)
    if base is None:
        if len(_ISO_BASE) >= 4096:
            _ISO_BASE.clear()
        base = _ISO_BASE[secs] = (_EPOCH + dt.timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%S")
    if digits <= 0:
        return base + "Z"
    return f"{base}.{str(rem).rjust(9, '0')[:digits]}Z"


def dumps(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)


# ---- seed 000: pub/sub ------------------------------------------------------------------------------


def trade_message(t: Trade, digits: int = 3) -> bytes:
    """NormalizedTrade JSON for ``PUBLISH market_trades:{symbol}``."""
    return trade_payloads(t, digits)[0]


def trade_list_entry(t: Trade, digits: int = 3) -> bytes:
    """An element of the ``market:{symbol}:trades`` list: NormalizedTrade plus venue and side (seed 004)."""
    return trade_payloads(t, digits)[1]


def trade_payloads(t: Trade, digits: int = 3) -> tuple[bytes, bytes]:
    """``(trade_message(t), trade_list_entry(t))`` with the shared fields formatted once."""
    d: dict[str, Any] = {
        "symbol": t.symbol,
        "price": num(t.price),
        "size": num(t.size),
        "timestamp": iso_from_ns(t.ts_event, digits),
        "tickType": "trade",
    }
    message = dumps(d)
    d["venue"] = t.venue
    d["side"] = t.side
    d["ts_event_ns"] = t.ts_event
    return message, dumps(d)


def bar_message(b: Bar, digits: int = 3) -> bytes:
    """NormalizedBar JSON (``PUBLISH market_data:{symbol}`` for 1m bars; list element of bars keys).

    ``timestamp`` is the bar's open time (as vendor bars are stamped)."""
    return dumps(
        {
            "symbol": b.symbol,
            "timeframe": b.timeframe,
            "open": num(b.open),
            "high": num(b.high),
            "low": num(b.low),
            "close": num(b.close),
            "volume": num(b.volume),
            "timestamp": iso_from_ns(b.ts_event, digits),
        }
    )


# ---- seed 004: market:{symbol}:ticker ---------------------------------------------------------------


def mid_and_spread(bid: int, ask: int) -> tuple[Decimal, int, Decimal] | None:
    """(mid, spread, spread_bps) or None when a side is empty (price <= 0): no NaN/inf by construction."""
    if bid <= 0 or ask <= 0:
        return None
    mid = _CTX.divide(Decimal(bid + ask), Decimal(2)).scaleb(-SCALE, _CTX)
    spread = ask - bid
    bps = _CTX.divide(Decimal(spread * 20000), Decimal(bid + ask)).quantize(_BPS_Q, context=_CTX)
    return mid, spread, bps


@dataclass
class Ticker:
    """Merged top-of-book + last trade of one symbol. Each half only moves forward in event time, so the
    final state does not depend on how the trades and quotes topics interleave."""

    symbol: str
    bid: int | None = None
    ask: int | None = None
    bid_size: int | None = None
    ask_size: int | None = None
    quote_ts: int = -1
    last: int | None = None
    last_size: int | None = None
    last_ts: int = -1

    def apply_quote(self, bid: int, bid_size: int, ask: int, ask_size: int, ts: int) -> bool:
        if ts < self.quote_ts:
            return False
        self.bid, self.bid_size, self.ask, self.ask_size, self.quote_ts = bid, bid_size, ask, ask_size, ts
        return True

    def apply_trade(self, price: int, size: int, ts: int) -> bool:
        if ts < self.last_ts:
            return False
        self.last, self.last_size, self.last_ts = price, size, ts
        return True

    def to_json(self, digits: int = 3) -> bytes:
        d: dict[str, Any] = {"symbol": self.symbol}
        for name in ("bid", "ask", "bid_size", "ask_size"):
            v = getattr(self, name)
            if v is not None:
                d[name] = num(v)
        if self.bid is not None and self.ask is not None:
            ms = mid_and_spread(self.bid, self.ask)
            if ms is not None:
                d["mid"] = _dec_num(ms[0])
                d["spread"] = num(ms[1])
                d["spread_bps"] = _dec_num(ms[2])
        if self.last is not None:
            d["last"] = num(self.last)
        if self.last_size is not None:
            d["last_size"] = num(self.last_size)
        updated = max(self.quote_ts, self.last_ts)
        d["timestamp"] = iso_from_ns(updated, digits)
        d["updated_ns"] = updated
        if self.quote_ts >= 0:
            d["quote_ts_ns"] = self.quote_ts
        if self.last_ts >= 0:
            d["last_ts_ns"] = self.last_ts
        return dumps(d)

    @classmethod
    def from_json(cls, symbol: str, data: bytes | str) -> Ticker:
        """Inverse of :meth:`to_json` (exact: numbers are read back from their text)."""
        exact = json.loads(data, parse_float=str, parse_int=str)

        def amt(name: str) -> int | None:
            return parse_units(exact[name]) if name in exact else None

        return cls(
            symbol=symbol,
            bid=amt("bid"),
            ask=amt("ask"),
            bid_size=amt("bid_size"),
            ask_size=amt("ask_size"),
            quote_ts=int(exact.get("quote_ts_ns", -1)),
            last=amt("last"),
            last_size=amt("last_size"),
            last_ts=int(exact.get("last_ts_ns", -1)),
        )


def ticker_from_quote(q: Quote) -> tuple[int, int, int, int, int]:
    return q.bid_price, q.bid_size, q.ask_price, q.ask_size, q.ts_event


# ---- seed 004: market:{symbol}:book ---------------------------------------------------------------


class Book:
    """One symbol's price levels (price -> size), built from snapshots and applied diffs."""

    __slots__ = ("asks", "bids", "ts_event")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.ts_event = 0

    def apply(self, u: BookUpdate) -> tuple[dict[int, int], dict[int, int]]:
        """Apply an update; returns the changed levels per side (size 0 = removed)."""
        if u.snapshot:
            self.bids = {lv.price: lv.size for lv in u.bids if lv.size > 0}
            self.asks = {lv.price: lv.size for lv in u.asks if lv.size > 0}
            self.ts_event = u.ts_event
            return dict(self.bids), dict(self.asks)
        changed: list[dict[int, int]] = [{}, {}]
        for side, levels, out in ((self.bids, u.bids, changed[0]), (self.asks, u.asks, changed[1])):
            for lv in levels:
                if lv.size > 0:
                    side[lv.price] = lv.size
                else:
                    side.pop(lv.price, None)
                out[lv.price] = lv.size
        self.ts_event = max(self.ts_event, u.ts_event)
        return changed[0], changed[1]

    def top(self, depth: int) -> tuple[list[Level], list[Level]]:
        bids = sorted(self.bids.items(), reverse=True)[:depth]
        asks = sorted(self.asks.items())[:depth]
        return [Level(p, s) for p, s in bids], [Level(p, s) for p, s in asks]


def book_json(
    symbol: str,
    bids: list[Level],
    asks: list[Level],
    ts_event: int,
    digits: int = 3,
    exchange: str | None = None,
) -> bytes:
    """``market:{symbol}:book``: best-first levels per side as {"price", "size"} (plus "count" if known);
    a per-exchange book (``market:{symbol}:{exchange}:book``) also names its ``exchange``."""

    def levels(side: list[Level]) -> list[dict[str, Any]]:
        out = []
        for lv in side:
            d: dict[str, Any] = {"price": num(lv.price), "size": num(lv.size)}
            if lv.count is not None:
                d["count"] = lv.count
            out.append(d)
        return out

    return dumps(
        {
            "symbol": symbol,
            **({"exchange": exchange} if exchange else {}),
            "bids": levels(bids),
            "asks": levels(asks),
            "depth": max(len(bids), len(asks)),
            "timestamp": iso_from_ns(ts_event, digits),
            "ts_event_ns": ts_event,
        }
    )


def snapshot_levels(u: BookUpdate, depth: int) -> tuple[list[Level], list[Level]]:
    """Best-first levels of a snapshot record (keeps vendor order counts), at most ``depth`` per side."""
    bids = sorted((lv for lv in u.bids if lv.size > 0), key=lambda lv: lv.price, reverse=True)[:depth]
    asks = sorted((lv for lv in u.asks if lv.size > 0), key=lambda lv: lv.price)[:depth]
    return bids, asks


# ---- seed 003: NATS -------------------------------------------------------------------------------

ASSET_SUBJECT: dict[str, str] = {
    "equity": "stocks",
    "option": "options",
    "future": "futures",
    "crypto": "crypto",
    "fx": "fx",
}


def subject_for(record: Trade | Quote | Bar | BookUpdate, prefix: str = "") -> str:
    """``market.<class>.<kind>``: trades, quotes, bars, and books as ``mbp10`` (10-level depth snapshots,
    seed 003's ``market.futures.mbp10``) or ``book`` (any other depth, e.g. crypto diffs)."""
    cls = ASSET_SUBJECT[record.asset_class]
    if isinstance(record, Trade):
        kind = "trades"
    elif isinstance(record, Quote):
        kind = "quotes"
    elif isinstance(record, Bar):
        kind = "bars"
    elif isinstance(record, BookUpdate):
        kind = "mbp10" if record.depth == 10 else "book"
    else:
        raise TypeError(f"no NATS subject for {type(record).__name__}")
    return f"{prefix}market.{cls}.{kind}"


def msg_id(record: Trade | Quote | Bar | BookUpdate) -> str:
    """JetStream ``Nats-Msg-Id``: the canonical record's identity (type, source, stream, session, seq,
    sub_seq). The type guards against two record kinds derived from one raw record sharing a sub_seq."""
    return (
        f"{type(record).__name__}:{record.source}:{record.stream}:{record.session}:"
        f"{record.seq}:{record.sub_seq}"
    )


def event_source(record: Trade | Quote | Bar | BookUpdate) -> str:
    """``replay`` for records that came from a replay (stream id ``replay*``), else the vendor id."""
    return "replay" if record.stream.startswith("replay") else record.source


# Per bridged type: (schema name, required amount fields, optional amount fields) -- as in to_json_dict.
_JSON_VIEW: dict[type[Any], tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    Trade: ("Trade", ("price", "size"), ("strike",)),
    Quote: ("Quote", ("bid_price", "bid_size", "ask_price", "ask_size"), ()),
    Bar: ("Bar", ("open", "high", "low", "close", "volume"), ("vwap",)),
    BookUpdate: ("BookUpdate", (), ()),
}


def json_view(record: Trade | Quote | Bar | BookUpdate) -> dict[str, Any]:
    """``tickwire.contract.codec.to_json_dict(record)`` for the four bridged types, with cached amount texts
    (unit tests assert equality with to_json_dict)."""
    name, req, opt = _JSON_VIEW[type(record)]
    d = msgspec.structs.asdict(record)
    for k in req:
        d[k] = fmt(d[k])
    for k in opt:
        if d[k] is not None:
            d[k] = fmt(d[k])
    if name == "Trade":
        if d["expiry"] is not None:
            d["expiry"] = d["expiry"].isoformat()
        d["conditions"] = list(d["conditions"])
    elif name == "Quote":
        d["conditions"] = list(d["conditions"])
    elif name == "BookUpdate":
        for side in ("bids", "asks"):
            d[side] = [{"price": fmt(lv.price), "size": fmt(lv.size), "count": lv.count} for lv in d[side]]
    d["schema"] = name
    return d


def nats_payload(record: Trade | Quote | Bar | BookUpdate) -> bytes:
    """The canonical JSON view (``tickwire.contract.codec.to_json_dict``: exact decimal strings, int ns) plus
    ``event_source``. Identical for live and replay apart from ``event_source``."""
    d = json_view(record)
    d["event_source"] = "replay" if record.stream.startswith("replay") else record.source
    return orjson.dumps(d)
