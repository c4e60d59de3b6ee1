"""Coinbase Exchange WebSocket feed and REST payloads -> canonical records.

- ``match`` / ``last_match`` -> Trade. ``side`` is the MAKER's side, so the aggressor is the opposite:
  side_rule ``maker_inverted``; trade_id = ``trade_id``; ts_event = ``time``.
- ``ticker`` -> Quote only when best_bid, best_ask AND best_bid_size, best_ask_size are present. The 2021
  feed carries no sizes; such tickers are control frames: a canonical Quote needs sizes, and the ticker's
  last trade is not emitted because ``match`` carries every trade already.
- ``snapshot`` -> BookUpdate snapshot=True; ``l2update`` -> BookUpdate diff (changes [side, price, size],
  size 0 = remove). level2 frames carry no sequence, so the book has no vendor continuity check. A snapshot
  without ``time`` (2021 feed) gets ts_event = ts_recv.
- ``subscriptions``, ``heartbeat``, ``status`` and ``error`` frames, and full-channel order events
  (received/open/done/change/activate), are control frames. An error frame answers a request the producer
  made and is seen by it; any other type is a ParseError (visible in the DLQ).
REST ``rest.products`` (product metadata) updates the state and is a control frame.

Continuity per product: on the matches channel ``sequence`` counts every order-book event, so it jumps by
design; ``trade_id`` grows by exactly one per trade and is what is checked. When full-channel events are
seen for a product, its ``sequence`` must also grow by one. A hole emits one Gap(vendor_seq_jump), puts the
product's canonical symbol in ``ParseOutput.resync`` and flags only it until its next level2 snapshot;
already seen trade ids / sequences (duplicates, e.g. matches also received on the full channel, or
last_match after a reconnect) are control frames.

Symbols: ``BTC-USD`` -> ``BTC/USD`` (products metadata first, else split on ``-``). venue ``COINBASE``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from tickwire.contract import book as h
from tickwire.contract.envelope import Envelope
from tickwire.contract.parser import ParseError, ParseOutput, book_update, check_gap, record_base
from tickwire.contract.records import BookUpdate, Level, Quote, Side, Trade
from tickwire.contract.symbols import (
    SYMBOL_PATTERNS,
    SymbolError,
    SymbolMemo,
    add_crypto_pairs,
    crypto_symbol,
    rfc3339_to_ns,
)
from tickwire.vendors.coinbase import wire

VENUE = "COINBASE"
_CONTROL = frozenset({"subscriptions", "heartbeat", "status", "error"})
_FULL = frozenset({"received", "open", "done", "change", "activate"})
_INVERT: dict[str, Side] = {"buy": "sell", "sell": "buy"}


def iso_to_ns(v: Any) -> int:
    """``2021-04-17T16:43:37.034538Z`` -> int ns since the epoch, exactly (shared RFC 3339 parser)."""
    if not isinstance(v, str):
        raise ParseError(f"time: expected an ISO 8601 string, got {type(v).__name__}")
    try:
        return rfc3339_to_ns(v)
    except ValueError as exc:
        raise ParseError(str(exc)) from None


@dataclass(slots=True)
class CoinbaseState:
    symbols: dict[str, str] = field(default_factory=dict)  # "BTC-USD" -> "BTC/USD"
    trades: h.NextId = field(default_factory=h.NextId)  # trade_id per product
    full: h.NextId = field(default_factory=h.NextId)  # full-channel sequence per product

    def load_products(self, products: Any) -> None:
        if not isinstance(products, list):
            raise ParseError("products answer is not a list")
        add_crypto_pairs(self.symbols, products, "id", "base_currency", "quote_currency")

    def canonical(self, raw: Any) -> str:
        pid = h.text(raw, "product_id")
        found = self.symbols.get(pid)
        if found is not None:
            return found
        return _split_pair(pid)

    def needs_resync(self, symbol: str) -> bool:
        return symbol in self.trades.needs_resync or symbol in self.full.needs_resync


def _split_rule(pid: str) -> str:
    try:
        sym = crypto_symbol(pid)
    except SymbolError:
        sym = ""
    if not SYMBOL_PATTERNS["crypto"].match(sym):
        raise ParseError(f"unknown symbol {pid!r}")
    return sym


_split_pair = SymbolMemo(_split_rule)  # the pure split rule is a split, two upper() and a regex per call


class CoinbaseParser:
    source = "coinbase"

    def new_state(self, metadata: Any = None) -> CoinbaseState:
        state = CoinbaseState()
        if metadata is not None:
            state.load_products(h.loads_exact(metadata) if isinstance(metadata, bytes | str) else metadata)
        return state

    def parse(self, payload: bytes, env: Envelope, state: CoinbaseState) -> ParseOutput:
        return h.parse_json(
            payload, env, state, vendor="coinbase", typed=_typed, lenient=_parse, decode=wire.DECODER.decode
        )

    def parse_lenient(self, payload: bytes, env: Envelope, state: CoinbaseState) -> ParseOutput:
        """Generic JSON -> dict reading, exact numbers: what the typed decoder refuses lands here."""
        return h.parse_json(payload, env, state, vendor="coinbase", typed=_typed, lenient=_parse)


# ---- typed path: one decode into wire Structs, then the same checks in the same order as below ----------


def _typed(m: Any, env: Envelope, state: CoinbaseState) -> ParseOutput:
    if type(m) is wire.L2Update:
        symbol = state.canonical(m.product_id)
        ts = iso_to_ns(m.time)
        bid_l: list[Level] = []
        ask_l: list[Level] = []
        for side, price, qty in m.changes:
            if side not in _INVERT:
                raise ParseError(f"l2update side {side!r} is neither buy nor sell")
            (bid_l if side == "buy" else ask_l).append(
                Level(h.size_text(price, "price"), h.size_text(qty, "size"))
            )
        return ParseOutput(records=[_book_update(env, symbol, ts, tuple(bid_l), tuple(ask_l), False)])
    if type(m) is wire.Match or type(m) is wire.LastMatch:
        return _match_typed(m, env, state)
    if type(m) is wire.Ticker:
        if m.best_bid is None or m.best_ask is None or m.best_bid_size is None or m.best_ask_size is None:
            return ParseOutput(control=True)  # 2021 tickers carry no sizes: no canonical Quote possible
        ts = env.ts_recv if m.time is msgspec.UNSET else iso_to_ns(m.time)
        quote = Quote(
            **_base(env, state.canonical(m.product_id), ts),
            bid_price=h.size_text(m.best_bid, "best_bid"),
            bid_size=h.size_text(m.best_bid_size, "best_bid_size"),
            ask_price=h.size_text(m.best_ask, "best_ask"),
            ask_size=h.size_text(m.best_ask_size, "best_ask_size"),
        )
        return ParseOutput(records=[quote])
    if type(m) is wire.Snapshot:
        symbol = state.canonical(m.product_id)
        ts = env.ts_recv if m.time is msgspec.UNSET else iso_to_ns(m.time)
        bids = tuple(Level(h.size_text(p, "bids price"), h.size_text(q, "bids size")) for p, q in m.bids)
        asks = tuple(Level(h.size_text(p, "asks price"), h.size_text(q, "asks size")) for p, q in m.asks)
        rec = _book_update(env, symbol, ts, bids, asks, True)
        state.trades.resynced(symbol)  # a fresh level2 snapshot is the resync: clear the product's flags
        state.full.resynced(symbol)
        return ParseOutput(records=[rec])
    if isinstance(m, wire.CONTROL):
        return ParseOutput(control=True)
    out = ParseOutput(control=True)  # full-channel order event
    symbol = state.canonical(m.product_id)
    _full_seq(env, state, symbol, m.sequence, iso_to_ns(m.time), out)
    return out


def _book_update(
    env: Envelope, symbol: str, ts: int, bids: tuple[Level, ...], asks: tuple[Level, ...], snapshot: bool
) -> BookUpdate:
    # Keyword construction without the ``_base`` dict: books are most of the feed. ts_event is checked
    # after the levels are parsed, as in the lenient path (same first error for a frame with two faults).
    ts_event = h.check_ts(ts, env.ts_recv, "ts_event")
    return book_update(env, symbol, "crypto", VENUE, ts_event, bids, asks, snapshot=snapshot)


def _match_typed(m: wire.Match, env: Envelope, state: CoinbaseState) -> ParseOutput:
    maker = m.side
    if maker not in _INVERT:
        raise ParseError(f"match side {maker!r} is neither buy nor sell")
    symbol = state.canonical(m.product_id)
    tid = m.trade_id
    trade = Trade(
        **_base(env, symbol, iso_to_ns(m.time)),
        price=h.size_text(m.price, "price"),
        size=h.size_text(m.size, "size"),
        side=_INVERT[maker],
        side_rule="maker_inverted",
        trade_id=str(tid),
    )
    out = ParseOutput(records=[trade])
    if symbol in state.full.last and not _full_seq(env, state, symbol, m.sequence, trade.ts_event, out):
        return ParseOutput(control=True)
    return _trade_continuity(env, state, symbol, tid, trade.ts_event, out)


# ---- lenient path: any JSON the typed decoder refuses (numbers as amounts, odd shapes, errors) ----------


def _parse(d: Any, env: Envelope, state: CoinbaseState) -> ParseOutput:
    if env.stream.startswith("rest."):
        if env.stream.partition("?")[0] != "rest.products":
            raise ParseError(f"unsupported coinbase REST answer {env.stream!r}")
        state.load_products(d)
        return ParseOutput(control=True)
    if not isinstance(d, dict):
        raise ParseError(f"expected a JSON object, got {type(d).__name__}")
    t = d.get("type")
    if t in ("match", "last_match"):
        return _match(d, env, state)
    if t == "l2update":
        return _book(d, env, state, snapshot=False)
    if t == "ticker":
        return _ticker(d, env, state)
    if t == "snapshot":
        return _book(d, env, state, snapshot=True)
    if t in _CONTROL:
        return ParseOutput(control=True)
    if t in _FULL:
        out = ParseOutput(control=True)
        _check_full(d, env, state, state.canonical(d["product_id"]), iso_to_ns(d["time"]), out)
        return out
    raise ParseError(f"unsupported coinbase message type {t!r}")


def _base(env: Envelope, symbol: str, ts_event: int) -> dict[str, Any]:
    return record_base(env, symbol, "crypto", h.check_ts(ts_event, env.ts_recv, "ts_event"), venue=VENUE)


def _gap(env: Envelope, symbol: str, chk: h.Check, ts: int, what: str, out: ParseOutput) -> None:
    check_gap(out, env, symbol, chk, ts, f"{what} jumped from {chk.last_before} to {chk.first_after}")


def _check_full(
    d: dict[str, Any], env: Envelope, state: CoinbaseState, symbol: str, ts: int, out: ParseOutput
) -> bool:
    return _full_seq(env, state, symbol, h.integer(d["sequence"], "sequence"), ts, out)


def _full_seq(env: Envelope, state: CoinbaseState, symbol: str, seq: int, ts: int, out: ParseOutput) -> bool:
    """Full-channel sequence continuity; False when the event was already seen."""
    chk = state.full.check(symbol, seq, ts)
    if chk.verdict is h.Verdict.GAP:
        _gap(env, symbol, chk, ts, "sequence", out)
    return chk.verdict is not h.Verdict.STALE


def _trade_continuity(
    env: Envelope, state: CoinbaseState, symbol: str, tid: int, ts: int, out: ParseOutput
) -> ParseOutput:
    """trade_id continuity, after every amount of the match is parsed (only now may state change)."""
    chk = state.trades.check(symbol, tid, ts)
    if chk.verdict is h.Verdict.STALE:
        return ParseOutput(control=True, gaps=out.gaps, resync=out.resync)
    if chk.verdict is h.Verdict.GAP:
        _gap(env, symbol, chk, ts, "trade_id", out)
    return out


def _match(d: dict[str, Any], env: Envelope, state: CoinbaseState) -> ParseOutput:
    maker = d["side"]
    if maker not in _INVERT:
        raise ParseError(f"match side {maker!r} is neither buy nor sell")
    symbol = state.canonical(d["product_id"])
    tid = h.integer(d["trade_id"], "trade_id")
    trade = Trade(
        **_base(env, symbol, iso_to_ns(d["time"])),
        price=h.size(d["price"], "price"),
        size=h.size(d["size"], "size"),
        side=_INVERT[maker],
        side_rule="maker_inverted",
        trade_id=str(tid),
    )
    out = ParseOutput(records=[trade])
    # Amounts are parsed: only now may continuity state change.
    if symbol in state.full.last and not _check_full(d, env, state, symbol, trade.ts_event, out):
        return ParseOutput(control=True)
    return _trade_continuity(env, state, symbol, tid, trade.ts_event, out)


def _ticker(d: dict[str, Any], env: Envelope, state: CoinbaseState) -> ParseOutput:
    if any(d.get(k) is None for k in ("best_bid", "best_ask", "best_bid_size", "best_ask_size")):
        return ParseOutput(control=True)  # 2021 tickers carry no sizes: no canonical Quote possible
    ts = iso_to_ns(d["time"]) if "time" in d else env.ts_recv
    quote = Quote(
        **_base(env, state.canonical(d["product_id"]), ts),
        bid_price=h.size(d["best_bid"], "best_bid"),
        bid_size=h.size(d["best_bid_size"], "best_bid_size"),
        ask_price=h.size(d["best_ask"], "best_ask"),
        ask_size=h.size(d["best_ask_size"], "best_ask_size"),
    )
    return ParseOutput(records=[quote])


def _book(d: dict[str, Any], env: Envelope, state: CoinbaseState, *, snapshot: bool) -> ParseOutput:
    symbol = state.canonical(d["product_id"])
    ts = iso_to_ns(d["time"]) if snapshot is False or "time" in d else env.ts_recv
    if snapshot:
        bids, asks = h.levels(d["bids"], "bids"), h.levels(d["asks"], "asks")
    else:
        changes = d["changes"]
        if not isinstance(changes, list):
            raise ParseError("l2update changes is not a list")
        bid_l: list[Level] = []
        ask_l: list[Level] = []
        for side, price, qty in changes:
            if side not in _INVERT:
                raise ParseError(f"l2update side {side!r} is neither buy nor sell")
            (bid_l if side == "buy" else ask_l).append(Level(h.size(price, "price"), h.size(qty, "size")))
        bids, asks = tuple(bid_l), tuple(ask_l)
    rec = BookUpdate(**_base(env, symbol, ts), bids=bids, asks=asks, snapshot=snapshot)
    if snapshot:  # a fresh level2 snapshot is the resync: clear the product's flags
        state.trades.resynced(symbol)
        state.full.resynced(symbol)
    return ParseOutput(records=[rec])


PARSER = CoinbaseParser()
