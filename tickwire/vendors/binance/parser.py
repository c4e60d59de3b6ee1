"""Binance spot WebSocket and REST payloads -> canonical records.

Frames: combined-stream wrappers ``{"stream": ..., "data": {...}}`` and bare single-stream events.
- ``aggTrade`` / ``trade`` -> Trade. ``m`` true = the buyer is the maker, so the aggressor sold: side
  ``sell`` (else ``buy``), side_rule ``vendor``; trade_id = ``a`` / ``t``; ts_event = ``T`` (ms).
- ``bookTicker`` -> Quote. It carries no event time, so **a Binance Quote always has ts_event == ts_recv**
  (the rule consumers can rely on to tell receive-stamped quotes).
- ``depthUpdate`` -> BookUpdate diff (first_update_id=U, last_update_id=u, size 0 = remove level).
- ``kline`` -> Bar only for the closed candle (``k.x``); in-progress candles and intervals with no canonical
  timeframe (3m, 5m, 1w, ...) are control frames. ts_event = ``k.t`` (open); vwap None (quote volume /
  volume is not exact); trade_count = ``n``.
- ``{"result": ..., "id": N}`` acks and ``{"code": ..., "msg": ...}`` errors are control frames (the
  producer that sent the request handles them); any other event type is a ParseError (visible in the DLQ).
REST answers arrive with stream ``rest.exchangeInfo`` (symbol metadata -> state, control) and
``rest.depth?symbol=XYZ&limit=N`` (snapshot -> BookUpdate snapshot=True, last_update_id, ts_event=ts_recv).

Symbols: ``BTCUSDT`` -> ``BTC/USDT`` from exchangeInfo base/quote assets in state; without metadata for a
symbol, the longest quote asset of ``QUOTE_SUFFIXES`` that ends it; else ParseError. venue ``BINANCE``.

Book continuity per symbol (see ``_book.BookContinuity``): a hole emits one Gap(vendor_seq_jump), puts the
canonical symbol in ``ParseOutput.resync`` and flags only that symbol until its next snapshot; its diffs keep
flowing (consumers see the Gap). Diffs already covered by the snapshot are control frames. Snapshots arrive
on the ``rest.depth`` stream, so the caller must keep ONE state per source, not per stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import msgspec

from tickwire.contract import book as h
from tickwire.contract.envelope import Envelope
from tickwire.contract.parser import ParseError, ParseOutput, book_update, check_gap, record_base
from tickwire.contract.records import Bar, BookUpdate, Level, Quote, Timeframe, Trade
from tickwire.contract.symbols import SymbolMemo, add_crypto_pairs, crypto_pair
from tickwire.vendors.binance import wire

VENUE = "BINANCE"
MS = 1_000_000  # ms -> ns

# Fallback quote assets when exchangeInfo lacks a symbol; longest match wins (e.g. "BUSD" before "USD").
QUOTE_SUFFIXES: tuple[str, ...] = tuple(
    sorted(
        (
            "USDT", "BUSD", "USDC", "TUSD", "USDP", "FDUSD", "DAI", "PAX", "UST", "BTC", "ETH", "BNB", "XRP",
            "TRX", "DOGE", "DOT", "EUR", "GBP", "TRY", "AUD", "BRL", "RUB", "UAH", "NGN", "ZAR", "JPY", "PLN",
            "RON", "ARS", "MXN", "IDRT", "BIDR", "BKRW", "VAI",
        ),
        key=len,
        reverse=True,
    )
)  # fmt: skip

# Binance kline intervals that have a canonical timeframe; the others are skipped as control.
TIMEFRAMES: dict[str, Timeframe] = {"1s": "1s", "1m": "1m", "1h": "1h", "1d": "1d"}


@dataclass(slots=True)
class BinanceState:
    symbols: dict[str, str] = field(default_factory=dict)  # "BTCUSDT" -> "BTC/USDT"
    book: h.BookContinuity = field(default_factory=h.BookContinuity)

    def load_exchange_info(self, info: Any) -> None:
        if not isinstance(info, dict) or not isinstance(info.get("symbols"), list):
            raise ParseError("exchangeInfo without a symbols list")
        add_crypto_pairs(self.symbols, info["symbols"], "symbol", "baseAsset", "quoteAsset")

    def canonical(self, raw: Any) -> str:
        found = self.symbols.get(raw) if type(raw) is str else None  # wire symbols are upper case already
        if found is not None:
            return found
        sym = h.text(raw, "symbol")
        if not sym.isascii():  # "ß".upper() is "SS": upper-casing would make another asset of it
            raise ParseError(f"non-ASCII symbol {sym[:32]!r}")
        sym = sym.upper()
        found = self.symbols.get(sym)
        if found is not None:
            return found
        return _by_suffix(sym)


def _suffix_rule(sym: str) -> str:
    for q in QUOTE_SUFFIXES:
        if sym.endswith(q) and len(sym) > len(q) and sym.isalnum():
            return crypto_pair(sym[: -len(q)], q)
    raise ParseError(f"unknown symbol {sym!r}")


_by_suffix = SymbolMemo(_suffix_rule)  # the pure suffix rule is up to 34 endswith() calls per symbol


class BinanceParser:
    source = "binance"

    def new_state(self, metadata: Any = None) -> BinanceState:
        state = BinanceState()
        if metadata is not None:
            state.load_exchange_info(
                h.loads_exact(metadata) if isinstance(metadata, bytes | str) else metadata
            )
        return state

    def parse(self, payload: bytes, env: Envelope, state: BinanceState) -> ParseOutput:
        return h.parse_json(
            payload, env, state, vendor="binance", typed=_typed, lenient=_parse, decode=_decode
        )

    def parse_lenient(self, payload: bytes, env: Envelope, state: BinanceState) -> ParseOutput:
        """Generic JSON -> dict reading, exact numbers: what the typed decoder refuses lands here."""
        return h.parse_json(payload, env, state, vendor="binance", typed=_typed, lenient=_parse)


# ---- typed path: wire Structs, then the same checks in the same order as the lenient path below -------


def _decode(payload: bytes) -> Any:
    """The event of a frame as a wire Struct, or None when only the lenient path can read it."""
    outer = wire.COMBINED.decode(payload)
    if outer.data is msgspec.UNSET or outer.stream is msgspec.UNSET:
        return wire.EVENT.decode(payload) if outer.stream is msgspec.UNSET else None
    if outer.stream.endswith("@bookTicker"):
        bt = wire.BOOK_TICKER.decode(outer.data)
        return bt if bt.e is None or bt.e == "bookTicker" else None
    return wire.EVENT.decode(outer.data)


def _typed(m: Any, env: Envelope, state: BinanceState) -> ParseOutput:
    if type(m) is wire.DepthUpdate:
        return _depth_typed(m, env, state)
    if type(m) is wire.BookTicker:
        ts = env.ts_recv  # bookTicker has no event time
        quote = Quote(  # keywords, not ``_base``'s dict: a third of the stream are bookTickers
            symbol=state.canonical(m.s),
            asset_class="crypto",
            source=env.source,
            venue=VENUE,
            stream=env.stream,
            session=env.session,
            seq=env.seq,
            ts_event=h.check_ts(ts, ts, "ts_event"),
            ts_recv=ts,
            bid_price=h.size_text(m.b, "bid price"),
            bid_size=h.size_text(m.B, "bid size"),
            ask_price=h.size_text(m.a, "ask price"),
            ask_size=h.size_text(m.A, "ask size"),
        )
        return ParseOutput(records=[quote])
    if type(m) is wire.AggTrade or type(m) is wire.Trade:
        tid = m.a if isinstance(m, wire.AggTrade) else m.t
        trade = Trade(
            **_base(env, state.canonical(m.s), m.T * MS),
            price=h.size_text(m.p, "price"),
            size=h.size_text(m.q, "size"),
            side="sell" if m.m else "buy",
            side_rule="vendor",
            trade_id=str(tid),
        )
        return ParseOutput(records=[trade])
    k = m.k  # kline
    tf = TIMEFRAMES.get(h.text(k.i, "interval"))
    if k.x is not True or tf is None:
        return ParseOutput(control=True)  # in-progress candle, or interval without a canonical timeframe
    bar = Bar(
        **_base(env, state.canonical(m.s if k.s is msgspec.UNSET else k.s), k.t * MS),
        timeframe=tf,
        open=h.size_text(k.o, "open"),
        high=h.size_text(k.h, "high"),
        low=h.size_text(k.l, "low"),
        close=h.size_text(k.c, "close"),
        volume=h.size_text(k.v, "volume"),
        trade_count=k.n,
    )
    return ParseOutput(records=[bar])


def _depth_typed(m: wire.DepthUpdate, env: Envelope, state: BinanceState) -> ParseOutput:
    symbol = state.canonical(m.s)
    first, last = m.U, m.u
    if first > last:
        raise ParseError(f"depthUpdate U={first} > u={last}")
    ts = h.check_ts(m.E * MS, env.ts_recv, "ts_event")
    size = h.size_text
    bids = tuple([Level(size(p, "bids price"), size(q, "bids size")) for p, q in m.b])
    asks = tuple([Level(size(p, "asks price"), size(q, "asks size")) for p, q in m.a])
    # Every amount is parsed (a bad one raised): a diff the book already covers is a control frame, and
    # needs no record (replayed and overlapping diffs are common: skip building what is thrown away).
    if state.book.is_stale(symbol, last):
        return ParseOutput(control=True)
    rec = book_update(
        env, symbol, "crypto", VENUE, ts, bids, asks, first_update_id=first, last_update_id=last
    )
    return _continuity(env, state, symbol, first, last, rec)


# ---- lenient path: any JSON the typed decoder refuses (numbers as amounts, acks, odd shapes, errors) ---


def _parse(doc: Any, env: Envelope, state: BinanceState) -> ParseOutput:
    if env.stream.startswith("rest."):
        return _rest(doc, env, state)
    if not isinstance(doc, dict):
        raise ParseError(f"expected a JSON object, got {type(doc).__name__}")
    d = doc["data"] if "data" in doc and "stream" in doc else doc
    if not isinstance(d, dict):
        raise ParseError("combined-stream data is not an object")
    e = d.get("e")
    if e == "depthUpdate":
        return _depth(d, env, state)
    if e in ("aggTrade", "trade"):
        return ParseOutput(records=[_trade(d, env, state)])
    if e == "kline":
        return _kline(d, env, state)
    if e in (None, "bookTicker") and {"b", "B", "a", "A", "s"} <= d.keys():
        return ParseOutput(records=[_quote(d, env, state)])
    if e is None and (("result" in d and "id" in d) or ("code" in d and "msg" in d)):
        return ParseOutput(control=True)
    raise ParseError(f"unsupported binance event {e!r}")


def _base(env: Envelope, symbol: str, ts_event: int, sub_seq: int = 0) -> dict[str, Any]:
    return record_base(
        env, symbol, "crypto", h.check_ts(ts_event, env.ts_recv, "ts_event"), venue=VENUE, sub_seq=sub_seq
    )


def _trade(d: dict[str, Any], env: Envelope, state: BinanceState) -> Trade:
    m = d["m"]
    if not isinstance(m, bool):
        raise ParseError("trade field 'm' is not a boolean")
    tid = h.integer(d["a"] if d["e"] == "aggTrade" else d["t"], "trade id")
    return Trade(
        **_base(env, state.canonical(d["s"]), h.integer(d["T"], "T") * MS),
        price=h.size(d["p"], "price"),
        size=h.size(d["q"], "size"),
        side="sell" if m else "buy",
        side_rule="vendor",
        trade_id=str(tid),
    )


def _quote(d: dict[str, Any], env: Envelope, state: BinanceState) -> Quote:
    return Quote(
        **_base(env, state.canonical(d["s"]), env.ts_recv),
        bid_price=h.size(d["b"], "bid price"),
        bid_size=h.size(d["B"], "bid size"),
        ask_price=h.size(d["a"], "ask price"),
        ask_size=h.size(d["A"], "ask size"),
    )


def _kline(d: dict[str, Any], env: Envelope, state: BinanceState) -> ParseOutput:
    k = d["k"]
    if not isinstance(k, dict):
        raise ParseError("kline field 'k' is not an object")
    tf = TIMEFRAMES.get(h.text(k["i"], "interval"))
    if k["x"] is not True or tf is None:
        return ParseOutput(control=True)  # in-progress candle, or interval without a canonical timeframe
    bar = Bar(
        **_base(env, state.canonical(k.get("s", d["s"])), h.integer(k["t"], "k.t") * MS),
        timeframe=tf,
        open=h.size(k["o"], "open"),
        high=h.size(k["h"], "high"),
        low=h.size(k["l"], "low"),
        close=h.size(k["c"], "close"),
        volume=h.size(k["v"], "volume"),
        trade_count=h.integer(k["n"], "n"),
    )
    return ParseOutput(records=[bar])


def _depth(d: dict[str, Any], env: Envelope, state: BinanceState) -> ParseOutput:
    symbol = state.canonical(d["s"])
    first, last = h.integer(d["U"], "U"), h.integer(d["u"], "u")
    if first > last:
        raise ParseError(f"depthUpdate U={first} > u={last}")
    base = _base(env, symbol, h.integer(d["E"], "E") * MS)
    rec = BookUpdate(
        **base,
        bids=h.levels(d["b"], "bids"),
        asks=h.levels(d["a"], "asks"),
        first_update_id=first,
        last_update_id=last,
    )
    return _continuity(env, state, symbol, first, last, rec)


def _continuity(
    env: Envelope, state: BinanceState, symbol: str, first: int, last: int, rec: BookUpdate
) -> ParseOutput:
    # Every amount is parsed by the caller: only now may the continuity state change.
    chk = state.book.diff(symbol, first, last, rec.ts_event)
    if chk.verdict is h.Verdict.STALE:
        return ParseOutput(control=True)
    out = ParseOutput(records=[rec])
    if chk.verdict is h.Verdict.GAP:
        detail = f"depthUpdate U={first} u={last} does not follow update id {chk.last_before}"
        check_gap(out, env, symbol, chk, rec.ts_event, detail)
    return out


def _rest(doc: Any, env: Envelope, state: BinanceState) -> ParseOutput:
    path, _, query = env.stream[len("rest.") :].partition("?")
    if isinstance(doc, dict) and "code" in doc and "msg" in doc:
        return ParseOutput(control=True)  # REST error answer
    if path == "exchangeInfo":
        state.load_exchange_info(doc)
        return ParseOutput(control=True)
    if path != "depth":
        raise ParseError(f"unsupported binance REST answer {path!r}")
    params = parse_qs(query)
    symbol = state.canonical(params.get("symbol", [""])[0])
    limit = params.get("limit", [""])[0]
    last = h.integer(doc["lastUpdateId"], "lastUpdateId")
    rec = BookUpdate(
        **_base(env, symbol, env.ts_recv),
        bids=h.levels(doc["bids"], "bids"),
        asks=h.levels(doc["asks"], "asks"),
        snapshot=True,
        last_update_id=last,
        depth=int(limit) if limit.isdigit() else None,
    )
    state.book.snapshot(symbol, last, rec.ts_event)
    return ParseOutput(records=[rec])


PARSER = BinanceParser()
