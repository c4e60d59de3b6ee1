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

from tickwire.contract import book as h
from tickwire.contract.envelope import Envelope
from tickwire.contract.parser import ParseError, ParseOutput
from tickwire.contract.records import Bar, BookUpdate, Gap, Level, Quote, Timeframe, Trade
from tickwire.contract.symbols import crypto_pair

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
        for s in info["symbols"]:
            if isinstance(s, dict) and all(
                isinstance(s.get(k), str) for k in ("symbol", "baseAsset", "quoteAsset")
            ):
                self.symbols[s["symbol"]] = crypto_pair(s["baseAsset"], s["quoteAsset"])

    def canonical(self, raw: Any) -> str:
        sym = h.text(raw, "symbol").upper()
        found = self.symbols.get(sym)
        if found is not None:
            return found
        for q in QUOTE_SUFFIXES:
            if sym.endswith(q) and len(sym) > len(q) and sym.isalnum():
                return crypto_pair(sym[: -len(q)], q)
        raise ParseError(f"unknown symbol {sym!r}")


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
        try:
            try:
                return _parse(h.loads_fast(payload), env, state)
            except h.NeedExact:  # raised before any state change: safe to run again on exact numbers
                return _parse(h.loads_exact(payload), env, state)
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
            if isinstance(exc, ParseError):
                raise
            raise ParseError(f"malformed binance payload: {type(exc).__name__}: {exc}") from None


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
    return {
        "symbol": symbol,
        "asset_class": "crypto",
        "source": env.source,
        "venue": VENUE,
        "stream": env.stream,
        "session": env.session,
        "seq": env.seq,
        "sub_seq": sub_seq,
        "ts_event": h.check_ts(ts_event, env.ts_recv, "ts_event"),
        "ts_recv": env.ts_recv,
    }


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


def _levels(raw: Any, what: str) -> tuple[Level, ...]:
    if not isinstance(raw, list):
        raise ParseError(f"{what} is not a list")
    return tuple(Level(h.size(p, f"{what} price"), h.size(q, f"{what} size")) for p, q in raw)


def _depth(d: dict[str, Any], env: Envelope, state: BinanceState) -> ParseOutput:
    symbol = state.canonical(d["s"])
    first, last = h.integer(d["U"], "U"), h.integer(d["u"], "u")
    if first > last:
        raise ParseError(f"depthUpdate U={first} > u={last}")
    base = _base(env, symbol, h.integer(d["E"], "E") * MS)
    rec = BookUpdate(
        **base,
        bids=_levels(d["b"], "bids"),
        asks=_levels(d["a"], "asks"),
        first_update_id=first,
        last_update_id=last,
    )
    # Every amount is parsed above: only now may the continuity state change.
    chk = state.book.diff(symbol, first, last, rec.ts_event)
    if chk.verdict is h.Verdict.STALE:
        return ParseOutput(control=True)
    out = ParseOutput(records=[rec])
    if chk.verdict is h.Verdict.GAP:
        out.gaps.append(
            Gap(
                source=env.source,
                stream=env.stream,
                symbol=symbol,
                reason="vendor_seq_jump",
                detected_by="normalizer",
                last_seq_before=chk.last_before,
                first_seq_after=chk.first_after,
                ts_start=chk.ts_before,
                ts_end=rec.ts_event,
                detail=f"depthUpdate U={first} u={last} does not follow update id {chk.last_before}",
            )
        )
        if chk.new_resync:
            out.resync.append(symbol)
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
        bids=_levels(doc["bids"], "bids"),
        asks=_levels(doc["asks"], "asks"),
        snapshot=True,
        last_update_id=last,
        depth=int(limit) if limit.isdigit() else None,
    )
    state.book.snapshot(symbol, last, rec.ts_event)
    return ParseOutput(records=[rec])


PARSER = BinanceParser()
