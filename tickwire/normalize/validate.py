"""Input-side checks on every canonical record a parser returns, before anything is published.

``Checks.check(record, clock_ns)`` raises ``ValidationError`` (the raw record goes to the DLQ) when:

* **time**: the record's ``ts_recv`` is later than ``clock_ns + ahead`` (``clock_ns`` is the envelope's
  receive time: the live socket read, or for replayed data the replay's own clock; a DBN record carries
  its capture time as ``ts_recv``, which can never be later than the replay reading it), or ``ts_event``
  lies outside ``[ts_recv - behind, ts_recv + ahead]`` (bars: ``behind`` plus their timeframe, since a bar
  is stamped with its open; instrument definitions: no lower bound but 2000-01-01, they describe the
  past). Both directions: a trade stamped 23 h ahead would otherwise move a bar watermark and make the
  rest of the day "late";
* **symbol**: it does not match its asset class's canonical grammar (``tickwire.contract.symbols``):
  symbols become Redis keys, channels and NATS subjects;
* **integers** do not fit their Avro types (``long`` identity fields, ``int`` depth, ``long`` counts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from tickwire.contract.records import Bar, BookUpdate, Gap, Instrument, Quote, Record, Trade
from tickwire.contract.symbols import SymbolError, check_symbol

TS_MIN = 946_684_800_000_000_000  # 2000-01-01T00:00:00Z in ns
DAY_NS = 86_400_000_000_000
CROSSED = "tw:crossed"  # condition the normalizer adds to a crossed quote (bid > ask, both > 0)
LONG_MAX = (1 << 63) - 1
INT_MAX = (1 << 31) - 1
TIMEFRAME_NS = {"1s": 10**9, "1m": 60 * 10**9, "1h": 3600 * 10**9, "1d": 86_400 * 10**9}
DEFAULT_AHEAD_NS = 300 * 10**9  # 5 min: clock skew between a vendor and us, never hours
DEFAULT_BEHIND_NS = 86_400 * 10**9  # 1 day: late prints and corrections, not last week's data
UNBOUNDED_BEHIND_NS = 1 << 62  # offline files: any age (``tickwire parse``)
_SYMBOLS_MAX = 100_000
MAX_GAP_SYMBOL = 64
_TEXT_FIELDS = ("venue", "bid_venue", "ask_venue", "trade_id")
# Market records; analytics snapshots (chains, news, indicators) describe the past and are keyed otherwise.
MARKET = (Trade, Quote, Bar, BookUpdate, Instrument)


class ValidationError(ValueError):
    """A parsed record violates the canonical invariants."""


def final(r: Record) -> Record:
    """The canonical invariants every published record keeps (parsed or derived); returns it (a crossed
    quote comes back flagged)."""
    if not r.symbol:
        raise ValidationError(f"{type(r).__name__}: empty symbol")
    if not (TS_MIN <= r.ts_event <= r.ts_recv + DAY_NS):
        raise ValidationError(
            f"{type(r).__name__} {r.symbol}: ts_event {r.ts_event} outside [2000-01-01, ts_recv + 1 day]"
        )
    # Futures (calendar spreads, 2020 crude) legitimately trade at zero or below; nothing else does.
    signed = r.asset_class == "future"
    if isinstance(r, Trade):
        if r.size < 0:
            raise ValidationError(f"Trade {r.symbol}: negative size {r.size}")
        if r.price <= 0 and not signed:
            raise ValidationError(f"Trade {r.symbol}: non-positive price {r.price}")
    elif isinstance(r, Quote):
        if r.bid_size < 0 or r.ask_size < 0:
            raise ValidationError(f"Quote {r.symbol}: negative size")
        if (r.bid_price < 0 or r.ask_price < 0) and not signed:
            raise ValidationError(f"Quote {r.symbol}: negative price")
        # Crossed markets happen (fast markets, venues out of sync): keep the quote, flag it visibly.
        if r.bid_price > 0 and r.ask_price > 0 and r.bid_price > r.ask_price and CROSSED not in r.conditions:
            return msgspec.structs.replace(r, conditions=(*r.conditions, CROSSED))
    elif isinstance(r, Bar):
        if r.volume < 0:
            raise ValidationError(f"Bar {r.symbol}: negative volume")
        if not (r.low <= min(r.open, r.close) and max(r.open, r.close) <= r.high):
            raise ValidationError(f"Bar {r.symbol}: open/close outside [low, high]")
    elif isinstance(r, BookUpdate):
        for lv in (*r.bids, *r.asks):
            if lv.size < 0:
                raise ValidationError(f"BookUpdate {r.symbol}: negative level size at {lv.price}")
    return r


@dataclass(frozen=True, slots=True)
class TimeWindow:
    ahead_ns: int = DEFAULT_AHEAD_NS
    behind_ns: int = DEFAULT_BEHIND_NS

    def __post_init__(self) -> None:
        if self.ahead_ns < 0 or self.behind_ns < 0:
            raise ValueError("time window bounds must be >= 0")


class Checks:
    """The checks with their window; keeps a bounded set of symbols already found canonical."""

    def __init__(self, window: TimeWindow | None = None) -> None:
        self.window = window or TimeWindow()
        self._symbols: set[tuple[str, str]] = set()
        self._ahead, self._behind = self.window.ahead_ns, self.window.behind_ns
        self.crossed = 0  # flagged crossed quotes accepted so far (callers count per record by difference)
        self._passes: dict[type[Record], Callable[[Any, int], bool]] = {
            Trade: self._trade_passes,
            Quote: self._quote_passes,
            BookUpdate: self._book_passes,
        }

    def cached_symbols(self) -> int:
        return len(self._symbols)

    def accept(self, r: Record, clock_ns: int) -> Record:
        """``finish(check(r, clock_ns))``, the parsed record as published.

        The hot record types first take one predicate that holds only where every step would pass and
        return ``r`` unchanged; a record it does not clear (a failure, a crossed or flagged quote, a symbol
        not yet cached) takes the steps, which word the error or flag the quote."""
        passes = self._passes.get(type(r))
        if passes is not None and passes(r, clock_ns):
            return r
        return self.finish(self.check(r, clock_ns))

    def finish(self, r: Record) -> Record:
        """``final(r)``, counting a flagged quote in ``crossed`` (parsed and derived records alike)."""
        r = final(r)
        if type(r) is Quote and CROSSED in r.conditions:
            self.crossed += 1
        return r

    def _common_pass(self, r: Trade | Quote | BookUpdate, clock_ns: int) -> bool:
        # check_time (not a bar: no timeframe allowance), the cached symbol, check_ints' identity fields,
        # final's non-empty symbol and ts_event bound.
        rv, ev, ahead = r.ts_recv, r.ts_event, self._ahead
        return (
            TS_MIN <= rv <= clock_ns + ahead
            and TS_MIN <= ev <= rv + ahead
            and rv - self._behind <= ev <= rv + DAY_NS
            and bool(r.symbol)
            and (r.symbol, r.asset_class) in self._symbols
            and 0 <= r.session <= LONG_MAX
            and 0 <= r.seq <= LONG_MAX
            and 0 <= r.sub_seq <= LONG_MAX
            and (r.venue is None or type(r.venue) is str)
        )

    def _trade_passes(self, r: Trade, clock_ns: int) -> bool:
        return (
            self._common_pass(r, clock_ns)
            and (r.trade_id is None or type(r.trade_id) is str)
            and r.size >= 0
            and (r.price > 0 or r.asset_class == "future")
        )

    def _quote_passes(self, r: Quote, clock_ns: int) -> bool:
        bp, ap = r.bid_price, r.ask_price
        return (
            self._common_pass(r, clock_ns)
            and (r.bid_venue is None or type(r.bid_venue) is str)
            and (r.ask_venue is None or type(r.ask_venue) is str)
            and r.bid_size >= 0
            and r.ask_size >= 0
            and ((bp >= 0 and ap >= 0) or r.asset_class == "future")
            and not (bp > 0 and ap > 0 and bp > ap)  # crossed: the steps flag it
            and CROSSED not in r.conditions  # flagged already: the steps count it
        )

    def _book_passes(self, r: BookUpdate, clock_ns: int) -> bool:
        if not (self._common_pass(r, clock_ns) and (r.depth is None or 0 <= r.depth <= INT_MAX)):
            return False
        for side in (r.bids, r.asks):
            for lv in side:
                if lv.size < 0 or (lv.count is not None and not 0 <= lv.count <= LONG_MAX):
                    return False
        return True

    def check(self, r: Record, clock_ns: int) -> Record:
        """``r`` when it passes every check (market records only; others are returned unchecked)."""
        if isinstance(r, MARKET):
            self.check_time(r, clock_ns)
            self.check_symbol(r)
            self.check_ints(r)
        return r

    def check_time(self, r: Record, clock_ns: int) -> None:
        w = self.window
        name = type(r).__name__
        if not TS_MIN <= r.ts_recv <= clock_ns + w.ahead_ns:
            raise ValidationError(
                f"{name} {r.symbol[:64]!r}: ts_recv {r.ts_recv} outside [2000-01-01, receive clock "
                f"{clock_ns} + {w.ahead_ns} ns]"
            )
        if isinstance(r, Instrument):
            lo = TS_MIN
        else:
            lo = r.ts_recv - w.behind_ns - (TIMEFRAME_NS.get(r.timeframe, 0) if isinstance(r, Bar) else 0)
        if not max(lo, TS_MIN) <= r.ts_event <= r.ts_recv + w.ahead_ns:
            raise ValidationError(
                f"{name} {r.symbol[:64]!r}: ts_event {r.ts_event} outside [ts_recv - {w.behind_ns} ns, "
                f"ts_recv + {w.ahead_ns} ns] (ts_recv {r.ts_recv})"
            )

    def check_symbol(self, r: Record) -> None:
        k = (r.symbol, r.asset_class)
        if k in self._symbols:
            return
        try:
            check_symbol(r.symbol, r.asset_class)
        except SymbolError as exc:
            raise ValidationError(f"{type(r).__name__}: {exc}") from None
        if len(self._symbols) >= _SYMBOLS_MAX:
            self._symbols.clear()
        self._symbols.add(k)

    def check_gap(self, g: Gap) -> Gap:
        """A parser's gap, whose numbers come from the input (vendor sequence numbers, times)."""
        for name in ("last_seq_before", "first_seq_after", "ts_start", "ts_end"):
            v = getattr(g, name)
            if v is not None and not -LONG_MAX - 1 <= v <= LONG_MAX:
                raise ValidationError(f"Gap {name} {v} outside Avro long")
        if g.symbol is not None and len(g.symbol) > MAX_GAP_SYMBOL:
            raise ValidationError(f"Gap symbol longer than {MAX_GAP_SYMBOL} characters")
        return g

    def check_ints(self, r: Record) -> None:
        for name in _TEXT_FIELDS:  # parsers copy these from the input as they come: a number is not a venue
            v = getattr(r, name, None)
            if v is not None and type(v) is not str:
                raise ValidationError(f"{type(r).__name__}: {name} is a {type(v).__name__}, not text")
        if not (0 <= r.session <= LONG_MAX and 0 <= r.seq <= LONG_MAX and 0 <= r.sub_seq <= LONG_MAX):
            raise ValidationError(f"{type(r).__name__}: session/seq/sub_seq outside Avro long >= 0")
        if isinstance(r, BookUpdate):
            if r.depth is not None and not 0 <= r.depth <= INT_MAX:
                raise ValidationError(f"BookUpdate: depth {r.depth} outside Avro int >= 0")
            for lv in (*r.bids, *r.asks):
                if lv.count is not None and not 0 <= lv.count <= LONG_MAX:
                    raise ValidationError(f"BookUpdate: level count {lv.count} outside Avro long >= 0")
        elif isinstance(r, Bar) and r.trade_count is not None and not 0 <= r.trade_count <= LONG_MAX:
            raise ValidationError(f"Bar: trade_count {r.trade_count} outside Avro long >= 0")
        elif isinstance(r, Instrument) and any(v is not None and v < 0 for v in (r.multiplier, r.tick_size)):
            raise ValidationError(f"Instrument {r.symbol!r}: negative multiplier or tick size")
