"""TWS API messages (``ibkr.raw``, content type ``tws``) -> canonical records (pure).

A raw payload is one TWS message as read from the socket without its 4-byte length prefix: fields each
terminated by NUL, field 0 the message id. The request context (``server_version``, ``req_id``,
``symbol``, ``exchange``, ``kind``) comes from the envelope's ``tw-context`` header. Fields are decoded
into typed messages (msgspec Structs, decimals kept as wire text) and then into records:

- 12 updateMktDepth / 13 updateMktDepthL2 -> the exchange's whole book after the change, as a snapshot
  ``BookUpdate`` (venue = the requested exchange, levels aggregated by price, ``count`` = rows at that
  price), TWS position semantics (``book.py``). No wire time: ``ts_event = ts_recv``.
- 1 tickPrice / 2 tickSize, tick types 1/2 (bid/ask price, with size) and 0/3 (bid/ask size): the
  exchange's top of book (fallback after 2152 / 309) as a one-level snapshot ``BookUpdate``; a price
  <= 0 empties that side. Other tick types are control.
- 99 tick-by-tick, tick type 1/2 (Last/AllLast) -> ``Trade`` (venue = the trade's exchange field, else
  the requested exchange; conditions: ``past_limit``/``unreported`` from the attribute mask, then the
  special-condition codes); type 3 (BidAsk) -> ``Quote`` (venue = the requested exchange; conditions
  ``bid_past_low``/``ask_past_high``); type 4 (MidPoint) is control. Wire time (epoch s) -> ns.
- 50 realtimeBar -> ``Bar`` 5s, origin vendor, ``ts_event`` = bar start (epoch s -> ns), vwap = wap,
  trade_count = count (``None`` when negative).
- 4 error/info: control. 1101 (data lost), 2103 (data farm broken) and 317 (depth reset) drop the books of
  the scope the context names (symbol and/or exchange; none = every book of this state) and report the
  symbols in ``resync``, so re-sent depth rebuilds fresh books.
- Sizes are shares, as the wire gives them. Any other message id, a wrong field count or a bad value is a
  ``ParseError`` (the raw record goes to the DLQ); state is never changed by a message that fails.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tickwire.contract.book import check_ts
from tickwire.contract.envelope import Envelope
from tickwire.contract.exact import AmountError, parse_units
from tickwire.contract.parser import ParseError, ParseOutput, record_base
from tickwire.contract.records import Bar, BookUpdate, Quote, Trade
from tickwire.contract.symbols import SYMBOL_PATTERNS
from tickwire.vendors.ibkr.book import DepthBook, IbkrState, Row, TopBook
from tickwire.vendors.ibkr.wire import ErrorMsg, RealTimeBar, TickBidAsk, TickLast, TickPrice, TickSize

SOURCE = "ibkr"
S = 1_000_000_000
RESET_CODES = frozenset({1101, 2103, 317})
# Request contexts repeat (one per reqId): a pure function's bounded cache of parsed headers.
_CONTEXTS: dict[str, dict[str, str]] = {}
_CONTEXTS_MAX = 10_000


class Depth(msgspec.Struct, frozen=True):
    req_id: int
    position: int
    mm: str
    operation: int
    side: int
    price: str
    size: str


class TbtOther(msgspec.Struct, frozen=True):
    """tickByTick of a type no record comes from (MidPoint): control."""

    req_id: int
    tick_type: int


# Depth merges the two depth layouts (12 has no market maker); the rest are the wire module's typed
# messages, built here field by field so that every bad field is a ParseError naming it.
Message = Depth | TickPrice | TickSize | TickLast | TickBidAsk | TbtOther | RealTimeBar | ErrorMsg


def split_fields(payload: bytes) -> list[str]:
    """NUL-terminated fields -> their texts (the trailing terminator required)."""
    if not payload.endswith(b"\0"):
        raise ParseError("TWS message does not end with a NUL field terminator")
    try:
        return payload[:-1].decode("utf-8").split("\0")
    except UnicodeDecodeError as exc:
        raise ParseError(f"TWS message is not UTF-8: {exc}") from None


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ParseError(f"{what}: not an integer: {text!r}") from None


def _need(f: list[str], n: int, name: str, at_least: bool = False) -> None:
    if len(f) < n or (len(f) != n and not at_least):
        raise ParseError(f"{name}: {len(f)} fields, expected {'>= ' if at_least else ''}{n}")


def decode(payload: bytes) -> Message:
    """One TWS message -> its typed form; unknown ids and malformed layouts raise ``ParseError``."""
    f = split_fields(payload)
    mid = _int(f[0], "message id")
    if mid == 13:  # 13,ver,reqId,position,marketMaker,operation,side,price,size[,isSmartDepth]
        _need(f, 9, "updateMktDepthL2", at_least=True)
        return Depth(_int(f[2], "reqId"), _int(f[3], "position"), f[4], _int(f[5], "operation"),
                     _int(f[6], "side"), f[7], f[8])  # fmt: skip
    if mid == 12:  # 12,ver,reqId,position,operation,side,price,size
        _need(f, 8, "updateMktDepth")
        return Depth(_int(f[2], "reqId"), _int(f[3], "position"), "", _int(f[4], "operation"),
                     _int(f[5], "side"), f[6], f[7])  # fmt: skip
    if mid == 1:  # 1,ver,reqId,tickType,price,size,attrMask
        _need(f, 7, "tickPrice")
        # attrMask (f[6]) stays unread (attr_mask 0): no record carries it, and it never failed a message
        return TickPrice(_int(f[2], "reqId"), _int(f[3], "tickType"), f[4], f[5])
    if mid == 2:  # 2,ver,reqId,tickType,size
        _need(f, 5, "tickSize")
        return TickSize(_int(f[2], "reqId"), _int(f[3], "tickType"), f[4])
    if mid == 99:  # 99,reqId,tickType,time,...
        _need(f, 4, "tickByTick", at_least=True)
        req, tt, t = _int(f[1], "reqId"), _int(f[2], "tickType"), _int(f[3], "time")
        if tt in (1, 2):
            _need(f, 9, "tickByTick AllLast")
            return TickLast(req, tt, t, f[4], f[5], _int(f[6], "mask"), f[7], f[8])
        if tt == 3:
            _need(f, 9, "tickByTick BidAsk")
            return TickBidAsk(req, tt, t, f[4], f[5], f[6], f[7], _int(f[8], "mask"))
        return TbtOther(req, tt)
    if mid == 50:  # 50,ver,reqId,time,open,high,low,close,volume,wap,count
        _need(f, 11, "realtimeBar")
        return RealTimeBar(_int(f[2], "reqId"), _int(f[3], "time"), f[4], f[5], f[6], f[7], f[8], f[9],
                     _int(f[10], "count"))  # fmt: skip
    if mid == 4:  # 4,ver,reqId,code,message[,advancedOrderRejectJson]
        _need(f, 5, "error", at_least=True)
        return ErrorMsg(_int(f[2], "reqId"), _int(f[3], "code"), f[4])
    raise ParseError(f"unknown TWS message id {mid}")


def _units(text: str, what: str, *, positive: bool = False) -> int:
    try:
        n = parse_units(text)
    except AmountError as exc:
        raise ParseError(f"{what}: {exc}") from None
    if n < 0 or (positive and n == 0):
        raise ParseError(f"{what}: {'non-positive' if positive else 'negative'} {text!r}")
    return n


def _side_price(text: str, what: str) -> int:
    """A quote side's price; <= 0 (TWS sends -1 for "no quote") means the side is empty."""
    try:
        n = parse_units(text or "0")
    except AmountError as exc:
        raise ParseError(f"{what}: {exc}") from None
    return max(n, 0)


def _symbol(ctx: dict[str, str]) -> str:
    sym = ctx.get("symbol", "").strip().upper().replace(" ", ".")
    if not sym or not SYMBOL_PATTERNS["equity"].match(sym):
        raise ParseError(f"no canonical symbol in the request context: {ctx.get('symbol')!r}")
    return sym


def _base(env: Envelope, sym: str, venue: str | None, ts_event: int) -> dict[str, Any]:
    return record_base(env, sym, "equity", ts_event, venue=venue or None)


def _wire_ts(seconds: int, env: Envelope, what: str) -> int:
    return check_ts(seconds * S, env.ts_recv, what)


class IbkrParser:
    source = SOURCE

    def new_state(self, metadata: Any = None) -> IbkrState:
        return IbkrState()

    def parse(self, payload: bytes, env: Envelope, state: IbkrState) -> ParseOutput:
        msg = decode(payload)
        ctx = _CONTEXTS.get(env.context)
        if ctx is None:
            if len(_CONTEXTS) >= _CONTEXTS_MAX:
                _CONTEXTS.clear()
            ctx = _CONTEXTS[env.context] = env.context_map()
        if isinstance(msg, ErrorMsg):
            return self._system(msg, ctx, state)
        if isinstance(msg, TbtOther):
            return ParseOutput(control=True)
        sym = _symbol(ctx)
        exchange = ctx.get("exchange", "")
        if isinstance(msg, Depth):
            return _depth(msg, env, state, sym, exchange)
        if isinstance(msg, TickPrice | TickSize):
            return _top(msg, env, state, sym, exchange)
        if isinstance(msg, TickLast):
            return _trade(msg, env, sym, exchange)
        if isinstance(msg, TickBidAsk):
            return _quote(msg, env, sym, exchange)
        return _bar(msg, env, sym, exchange)

    @staticmethod
    def _system(msg: ErrorMsg, ctx: dict[str, str], state: IbkrState) -> ParseOutput:
        state.controls += 1
        if msg.code not in RESET_CODES:
            return ParseOutput(control=True)
        symbol = ctx.get("symbol", "").strip().upper().replace(" ", ".")
        return ParseOutput(control=True, resync=state.reset(symbol, ctx.get("exchange", "")))


def _book(env: Envelope, sym: str, exchange: str, levels: tuple[Any, Any]) -> BookUpdate:
    if not exchange:
        raise ParseError("book message without an exchange in the request context")
    bids, asks = levels
    return BookUpdate(**_base(env, sym, exchange, env.ts_recv), bids=bids, asks=asks, snapshot=True)


def _depth(msg: Depth, env: Envelope, state: IbkrState, sym: str, exchange: str) -> ParseOutput:
    row = Row(msg.mm, _side_price(msg.price, "depth price"), _units(msg.size or "0", "depth size"))
    if msg.operation != 2 and row.price == 0:
        raise ParseError(f"depth operation {msg.operation} without a price: {msg.price!r}")
    key = (sym, exchange)
    book = state.depth.get(key)
    fresh = book is None
    if book is None:
        book = DepthBook()
    book.apply(msg.position, msg.operation, msg.side, row)  # raises before changing anything
    if fresh:
        state.depth[key] = book
    return ParseOutput(records=[_book(env, sym, exchange, book.levels())])


def _top(msg: TickPrice | TickSize, env: Envelope, state: IbkrState, sym: str, exchange: str) -> ParseOutput:
    tt = msg.tick_type
    if tt not in ((1, 2) if isinstance(msg, TickPrice) else (0, 3)):
        return ParseOutput(control=True)  # last, volume, high/low, ...: not top of book
    key = (sym, exchange)
    cur = state.tops.get(key) or TopBook()
    new = TopBook(cur.bid, cur.bid_size, cur.ask, cur.ask_size)
    size = _units(msg.size or "0", "tick size")
    if isinstance(msg, TickPrice):
        price = _side_price(msg.price, "tick price")
        if tt == 1:
            new.bid, new.bid_size = price, size if price else 0
        else:
            new.ask, new.ask_size = price, size if price else 0
    elif tt == 0:
        new.bid_size = size if new.bid else 0
    else:
        new.ask_size = size if new.ask else 0
    record = _book(env, sym, exchange, new.levels())
    state.tops[key] = new
    return ParseOutput(records=[record])


def _trade(msg: TickLast, env: Envelope, sym: str, exchange: str) -> ParseOutput:
    conds = [c for bit, c in ((1, "past_limit"), (2, "unreported")) if msg.mask & bit]
    conds += msg.special_conditions.split()
    return ParseOutput(
        records=[
            Trade(
                **_base(env, sym, msg.exchange or exchange, _wire_ts(msg.time, env, "trade time")),
                price=_units(msg.price, "trade price", positive=True),
                size=_units(msg.size, "trade size"),
                conditions=tuple(conds),
            )
        ]
    )


def _quote(msg: TickBidAsk, env: Envelope, sym: str, exchange: str) -> ParseOutput:
    conds = [c for bit, c in ((1, "bid_past_low"), (2, "ask_past_high")) if msg.mask & bit]
    return ParseOutput(
        records=[
            Quote(
                **_base(env, sym, exchange, _wire_ts(msg.time, env, "quote time")),
                bid_price=_side_price(msg.bid_price, "bid price"),
                ask_price=_side_price(msg.ask_price, "ask price"),
                bid_size=_units(msg.bid_size or "0", "bid size"),
                ask_size=_units(msg.ask_size or "0", "ask size"),
                conditions=tuple(conds),
            )
        ]
    )


def _bar(msg: RealTimeBar, env: Envelope, sym: str, exchange: str) -> ParseOutput:
    wap = _side_price(msg.wap, "bar wap")
    return ParseOutput(
        records=[
            Bar(
                **_base(env, sym, exchange, _wire_ts(msg.time, env, "bar time")),
                timeframe="5s",
                open=_units(msg.open, "bar open", positive=True),
                high=_units(msg.high, "bar high", positive=True),
                low=_units(msg.low, "bar low", positive=True),
                close=_units(msg.close, "bar close", positive=True),
                volume=_units(msg.volume, "bar volume"),
                vwap=wap or None,
                trade_count=msg.count if msg.count >= 0 else None,
                origin="vendor",
            )
        ]
    )


PARSER = IbkrParser()
