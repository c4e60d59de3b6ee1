"""Alpaca market data (v2 stocks, v1beta3 crypto, v1beta1 options) WebSocket frames -> canonical records.

A raw payload is one WebSocket frame: a JSON array (content type ``json``) or a MessagePack array
(``msgpack``) of messages, each with a type ``T``. Asset class comes from the envelope stream
(``stocks.*`` equity, ``crypto.*`` crypto, ``options.*`` option).

Policy:
- JSON numbers are read from their text (never via float); MessagePack floats are binary doubles on
  the wire and go through ``float_to_units`` (shortest repr).
- Control frames (``success``, ``subscription``, ``error``) -> ``control=True``. Vendor ``error`` frames
  are vendor state (auth, limits), not bad data: never DLQ'd; counted in ``state.errors``.
- Known market messages tickwire has no canonical record for (trading status, LULD, imbalance, trade
  cancels/corrections, news) are skipped and counted in ``state.skipped``. An unknown ``T`` inside a
  frame that also carries known messages is skipped and counted the same way; a frame made only of
  unknown types is a ``ParseError`` (vendor format drift must be visible in the DLQ).
- Any invalid value in a message (NaN/inf, negative size or price, empty symbol, timestamp before 1990
  or more than one day after ts_recv) makes the whole frame a ``ParseError``: the frame stays intact
  in the DLQ for a fix-and-replay.
- Stock trades carry no aggressor: side "unknown", side_rule "none". Crypto ``tks`` B/S is the taker.
- ``sub_seq`` = the message's index in the frame.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

import msgpack
import msgspec

from tickwire.contract.envelope import Envelope
from tickwire.contract.exact import MAX_ABS, ONE, UNITS_CACHE, AmountError, float_to_units, parse_units
from tickwire.contract.parser import ParseError, ParseOutput, count_skipped, record_base
from tickwire.contract.records import (
    AssetClass,
    Bar,
    BookUpdate,
    Level,
    OptionRight,
    Quote,
    Record,
    Side,
    SideRule,
    Trade,
)
from tickwire.contract.symbols import SymbolError, parse_option, rfc3339_to_ns
from tickwire.vendors.alpaca import wire
from tickwire.vendors.alpaca.wire import decode_frame

MIN_TS = 631_152_000 * 10**9  # 1990-01-01
MAX_AHEAD = 86_400 * 10**9  # one day after ts_recv
CONTROL_TYPES = frozenset({"success", "subscription", "error"})
# Market messages without a canonical record: status, LULD, imbalance, cancel/error, correction, news.
SKIPPED_TYPES = frozenset({"s", "l", "i", "x", "c", "n"})
BAR_TYPES = {"b": ("1m", False), "d": ("1d", False), "u": ("1m", True)}
MARKET_TYPES = frozenset({"t", "q", "o", *BAR_TYPES})


_Num = wire.Num  # older parser-state snapshots pickled error frames holding this name's numbers


@dataclass
class AlpacaState:
    skipped: Counter[str] = field(default_factory=Counter)
    errors: list[dict[str, Any]] = field(default_factory=list)  # last vendor error frames (bounded)


def _amount(v: Any, what: str) -> int:
    try:
        if type(v) is int:
            units: int = v * ONE
            if abs(units) > MAX_ABS:
                raise AmountError(f"{v} exceeds decimal(38, 9)")
            return units
        if isinstance(v, str):  # _Num from JSON (or a numeric string)
            return parse_units(v)
        if isinstance(v, float):
            return float_to_units(v)
    except AmountError as exc:
        raise ParseError(f"{what}: {exc}") from None
    raise ParseError(f"{what}: not a number: {v!r}")


def _size(v: Any, what: str) -> int:
    n = _amount(v, what)
    if n < 0:
        raise ParseError(f"{what}: negative {n}")
    return n


def _price(v: Any, what: str) -> int:
    n = _amount(v, what)
    if n < 0:
        raise ParseError(f"{what}: negative {n}")
    return n


def _ts(v: Any, ts_recv: int) -> int:
    if isinstance(v, str):
        try:
            ns = rfc3339_to_ns(v)
        except ValueError as exc:
            raise ParseError(str(exc)) from None
    elif isinstance(v, msgpack.Timestamp):
        ns = v.to_unix_nano()
    else:
        raise ParseError(f"timestamp of unexpected type {type(v).__name__}")
    if ns < MIN_TS or ns > ts_recv + MAX_AHEAD:
        raise ParseError(f"timestamp {ns} outside the sane window (1990 .. ts_recv + 1 day)")
    return ns


def _asset_class(stream: str) -> AssetClass:
    if stream.startswith("crypto"):
        return "crypto"
    if stream.startswith("options"):
        return "option"
    return "equity"


def _levels(raw: Any, what: str) -> tuple[Level, ...]:
    if not isinstance(raw, list):
        raise ParseError(f"{what}: levels are not an array")
    return tuple(Level(_price(lv.get("p"), what), _size(lv.get("s"), what)) for lv in raw)


class AlpacaParser:
    source = "alpaca"

    @staticmethod
    def stream_for_url(url: str) -> str | None:
        """Stream id of a market-data WebSocket URL, as the alpaca producer names it."""
        path = url.split("://", 1)[-1].split("?", 1)[0].rstrip("/")
        parts = path.split("/")
        if "crypto" in parts:
            return f"crypto.{parts[-1]}"
        if parts[-1] in ("opra", "indicative"):
            return f"options.{parts[-1]}"
        if len(parts) >= 3 and parts[-2] == "v2":
            return f"stocks.{parts[-1]}"
        return None

    def new_state(self, metadata: Any = None) -> AlpacaState:
        return AlpacaState()

    def parse(self, payload: bytes, env: Envelope, state: AlpacaState) -> ParseOutput:
        try:
            if env.content_type == "msgpack":
                raw = msgpack.unpackb(payload, raw=False, timestamp=0, strict_map_key=False)
                typed = msgspec.convert(raw, list[wire.Message])
            else:
                typed = wire.JSON.decode(payload)
        except Exception:  # msgspec and msgpack errors, or anything but market messages: read leniently
            return self.parse_lenient(payload, env, state)
        out = ParseOutput()
        asset = _asset_class(env.stream)
        records = out.records
        for i, m in enumerate(typed):
            try:
                records.append(_typed(m, i, env, asset))
            except (KeyError, TypeError, AttributeError, SymbolError) as exc:
                t = wire.TAG[type(m)]
                raise ParseError(f"message {i} type {t!r}: malformed: {type(exc).__name__}: {exc}") from None
        out.control = not records
        return out

    def parse_lenient(self, payload: bytes, env: Envelope, state: AlpacaState) -> ParseOutput:
        """Generic JSON/msgpack -> dicts: control and skipped messages, odd shapes and errors land here."""
        msgs = decode_frame(payload, env.content_type)
        out = ParseOutput()
        asset = _asset_class(env.stream)
        known = unknown = 0
        for i, m in enumerate(msgs):
            t = m.get("T")
            if not isinstance(t, str):  # a list or dict is unhashable: an unknown type, not a crash
                t = f"<{type(t).__name__}>"
            if t in CONTROL_TYPES:
                known += 1
                if t == "error":
                    state.errors = [*state.errors[-9:], m]
                continue
            if t in SKIPPED_TYPES:
                known += 1
                state.skipped[str(t)] += 1
                continue
            if t not in MARKET_TYPES:
                unknown += 1
                count_skipped(state.skipped, t)
                continue
            try:
                rec = self._message(t, m, i, env, asset)
            except (KeyError, TypeError, AttributeError, SymbolError) as exc:
                raise ParseError(f"message {i} type {t!r}: malformed: {type(exc).__name__}: {exc}") from None
            known += 1
            out.records.append(rec)
        if unknown and not known:
            raise ParseError(
                f"frame holds only unknown message types: {sorted({str(m.get('T')) for m in msgs})}"
            )
        out.control = not out.records
        return out

    def _message(self, t: str, m: dict[str, Any], i: int, env: Envelope, asset: AssetClass) -> Record:
        # The lenient twin of ``_typed`` below: same checks, same order, on a dict.
        raw_symbol = m["S"]
        if not isinstance(raw_symbol, str) or not raw_symbol.strip():
            raise ParseError(f"message {i}: empty symbol")
        symbol = raw_symbol
        opt = None
        if asset == "option":
            opt = parse_option(raw_symbol)
            symbol = opt.symbol
        venue = m.get("x") if t == "t" else None  # only trades name their venue
        common = record_base(
            env, symbol, asset, _ts(m["t"], env.ts_recv), venue=venue, sub_seq=i, source=self.source
        )
        if t == "t":
            tks = m.get("tks")
            side: Side = "buy" if tks == "B" else "sell" if tks == "S" else "unknown"
            rule: SideRule = "none" if side == "unknown" else "vendor"
            trade_id = m.get("i")
            return Trade(
                **common,
                price=_price(m["p"], "p"),
                size=_size(m["s"], "s"),
                side=side,
                side_rule=rule,
                trade_id=None if trade_id is None else str(trade_id),
                conditions=_conditions(m.get("c")),
                underlying=opt.underlying if opt else None,
                expiry=opt.expiry if opt else None,
                right=cast(OptionRight, opt.right) if opt else None,
                strike=opt.strike if opt else None,
            )
        if t == "q":
            return Quote(
                **common,
                bid_price=_price(m["bp"], "bp"),
                bid_size=_size(m["bs"], "bs"),
                ask_price=_price(m["ap"], "ap"),
                ask_size=_size(m["as"], "as"),
                bid_venue=m.get("bx"),
                ask_venue=m.get("ax"),
                conditions=_conditions(m.get("c")),
            )
        if t in BAR_TYPES:
            timeframe, correction = BAR_TYPES[t]
            vw, n = m.get("vw"), m.get("n")
            return Bar(
                **common,
                timeframe=timeframe,  # type: ignore[arg-type]
                open=_price(m["o"], "o"),
                high=_price(m["h"], "h"),
                low=_price(m["l"], "l"),
                close=_price(m["c"], "c"),
                volume=_size(m["v"], "v"),
                vwap=None if vw is None else _price(vw, "vw"),
                trade_count=None if n is None else int(n),
                correction=correction,
            )
        return BookUpdate(  # "o"
            **common,
            bids=_levels(m.get("b", []), "b"),
            asks=_levels(m.get("a", []), "a"),
            snapshot=bool(m.get("r", False)),
        )


_UNITS = UNITS_CACHE
_MAX_WHOLE = MAX_ABS // ONE


def _px(v: Any, what: str) -> int:
    """``_price``/``_size`` (both refuse negatives) with the common cases inline: a JSON number's text seen
    before (one dict hit), a non-negative integer; everything else takes the full path and its errors."""
    if type(v) is wire.Num:
        n = _UNITS.get(v)
        if n is not None and n >= 0:
            return n
    elif type(v) is int and 0 <= v <= _MAX_WHOLE:
        return v * ONE
    return _price(v, what)


_CONDITIONS: dict[tuple[Any, ...], tuple[str, ...]] = {}  # condition lists seen, all text; bounded
_CONDITIONS_MAX = 10_000


def _conditions(cond: Any) -> tuple[str, ...]:
    if not cond:
        return ()
    if isinstance(cond, str):
        return (cond,)
    try:
        key = tuple(cond)
        hit = _CONDITIONS.get(key)
    except TypeError:  # unhashable items (malformed input): converted, not cached
        return tuple(str(c) for c in cond)
    if hit is not None:
        return hit
    out = tuple(str(c) for c in key)
    if out == key:  # only all-text lists are cached: a cached key never equals a list holding 1 or true
        if len(_CONDITIONS) >= _CONDITIONS_MAX:
            _CONDITIONS.clear()
        _CONDITIONS[key] = out
    return out


def _typed(m: Any, i: int, env: Envelope, asset: AssetClass) -> Record:
    """One typed market message -> its record; checks in the order of ``AlpacaParser._message``."""
    symbol = m.S
    if not symbol.strip():
        raise ParseError(f"message {i}: empty symbol")
    opt = None
    if asset == "option":
        opt = parse_option(symbol)
        symbol = opt.symbol
    ts_event = _ts(m.t, env.ts_recv)
    cls = type(m)
    # Trades and quotes (most of the feed) by keywords: ``record_base``'s dict and ``**`` cost about a
    # fifth of the time of such a record (measured on the typed path).
    if cls is wire.TradeMsg:
        tks = m.tks
        side: Side = "buy" if tks == "B" else "sell" if tks == "S" else "unknown"
        price, size = _px(m.p, "p"), _px(m.s, "s")
        return Trade(
            symbol=symbol,
            asset_class=asset,
            source="alpaca",
            venue=m.x,
            stream=env.stream,
            session=env.session,
            seq=env.seq,
            sub_seq=i,
            ts_event=ts_event,
            ts_recv=env.ts_recv,
            price=price,
            size=size,
            side=side,
            side_rule="none" if side == "unknown" else "vendor",
            trade_id=None if m.i is None else str(m.i),
            conditions=_conditions(m.c),
            underlying=opt.underlying if opt else None,
            expiry=opt.expiry if opt else None,
            right=cast(OptionRight, opt.right) if opt else None,
            strike=opt.strike if opt else None,
        )
    if cls is wire.QuoteMsg:
        return Quote(
            symbol=symbol,
            asset_class=asset,
            source="alpaca",
            stream=env.stream,
            session=env.session,
            seq=env.seq,
            sub_seq=i,
            ts_event=ts_event,
            ts_recv=env.ts_recv,
            bid_price=_px(m.bp, "bp"),
            bid_size=_px(m.bs, "bs"),
            ask_price=_px(m.ap, "ap"),
            ask_size=_px(m.as_, "as"),
            bid_venue=m.bx,
            ask_venue=m.ax,
            conditions=_conditions(m.c),
        )
    common = record_base(env, symbol, asset, ts_event, sub_seq=i, source="alpaca")
    if cls is wire.OrderbookMsg:
        return BookUpdate(
            **common,
            bids=tuple(Level(_px(lv.p, "b"), _px(lv.s, "b")) for lv in m.b),
            asks=tuple(Level(_px(lv.p, "a"), _px(lv.s, "a")) for lv in m.a),
            snapshot=bool(m.r),
        )
    timeframe, correction = BAR_TYPES[wire.TAG[cls]]
    vw, n = m.vw, m.n
    return Bar(
        **common,
        timeframe=timeframe,  # type: ignore[arg-type]
        open=_px(m.o, "o"),
        high=_px(m.h, "h"),
        low=_px(m.l, "l"),
        close=_px(m.c, "c"),
        volume=_px(m.v, "v"),
        vwap=None if vw is None else _px(vw, "vw"),
        trade_count=None if n is None else int(n),
        correction=correction,
    )


PARSER = AlpacaParser()
