"""Massive (formerly Polygon.io) WebSocket frames -> canonical records (pure).

A raw payload is one WebSocket text frame: a JSON array of events tagged ``ev`` (``status``, ``T``,
``Q``, ``A``, ``AM``), possibly mixed. Decoding goes through msgspec Structs (``wire``) whose decimals stay
the JSON number's text, so prices and sizes are exact (never a float).

Rules:
- Asset class: a symbol ``O:...`` is an option (underlying, expiry, right and strike parsed from the OSI
  ticker from the right, roots vary in length), anything else an equity. Venue = the ``x`` exchange id.
- Times: ``t`` (SIP time, ms) -> ``ts_event`` ns; bars use ``s`` (window start, ms) as the open time.
- Stocks ``T``: ``i`` trade id, ``c`` conditions (ints as text), ``q`` vendor sequence, ``z`` tape ->
  ``tape``, the TRF fields ``trfi`` -> ``trf_id`` and ``trft`` (ms) -> ``trf_ts`` (ns); a fractional
  ``ds`` size, when present, is the exact size. Side: not on the feed ("unknown", "none").
- Quote sizes: the stocks spec gives ``bs``/``as`` in round lots ("a bid size of 2 means 200 shares"),
  so stock quote sizes are multiplied by ``ROUND_LOT`` = 100 shares; option quote sizes are contracts,
  unchanged. Quote ``c`` (one int) is the condition; ``i`` indicators are not carried.
- Options ``T`` has no trade id: a deterministic ``"{t}-{q}"`` (ms time, sequence) is used.
- ``A`` -> 1 s bar, ``AM`` -> 1 min bar (origin vendor), ``vw`` = vwap.
- Sequence ``q``: increasing and unique per ticker, NOT contiguous ("will not always be sequential"), so
  a forward jump is normal. Only a regression or a repeat (``q <= last q`` of the same ``ev`` and ticker)
  is a gap: one ``Gap(vendor_seq_jump)`` for that symbol; the record is still emitted.
- ``status`` frames are control frames; unknown ``ev`` types beside known ones are skipped and counted,
  a frame of only unknown types, bad JSON or a bad value is a ``ParseError`` (the frame goes to the DLQ).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec

from tickwire.contract import jsonlimits
from tickwire.contract.envelope import Envelope
from tickwire.contract.exact import AmountError, parse_units
from tickwire.contract.parser import ParseError, ParseOutput, count_skipped, seq_gap
from tickwire.contract.records import Bar, OptionRight, Quote, Record, Trade
from tickwire.contract.symbols import SymbolError, parse_option
from tickwire.vendors.polygon import wire

SOURCE = "polygon"
MS = 1_000_000
ROUND_LOT = 100
MIN_TS = 631_152_000 * 10**9  # 1990-01-01
MAX_AHEAD = 86_400 * 10**9  # one day after ts_recv


@dataclass
class PolygonState:
    last_q: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # (ev, sym) -> (q, ts)
    skipped: Counter[str] = field(default_factory=Counter)
    statuses: list[tuple[str, str]] = field(default_factory=list)  # last (status, message), bounded


def _units(raw: msgspec.Raw | str, what: str) -> int:
    text = bytes(raw).decode() if isinstance(raw, msgspec.Raw) else raw
    try:
        n = parse_units(text)
    except AmountError as exc:
        raise ParseError(f"{what}: {exc}") from None
    if n < 0:
        raise ParseError(f"{what}: negative {text}")
    return n


def _ts(ms: int, ts_recv: int) -> int:
    ns = ms * MS
    if ns < MIN_TS or ns > ts_recv + MAX_AHEAD:
        raise ParseError(f"timestamp {ms} ms outside the sane window (1990 .. ts_recv + 1 day)")
    return ns


class PolygonParser:
    source = SOURCE

    @staticmethod
    def stream_for_url(url: str) -> str | None:
        """Stream id of a WebSocket URL, as the producer names it (the market path)."""
        path = url.split("://", 1)[-1].split("?", 1)[0].rstrip("/")
        last = path.rsplit("/", 1)[-1]
        return last if last in ("stocks", "options") else None

    def new_state(self, metadata: Any = None) -> PolygonState:
        return PolygonState()

    def parse(self, payload: bytes, env: Envelope, state: PolygonState) -> ParseOutput:
        try:
            events, skipped = jsonlimits.decode(wire.decode, payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ParseError(f"undecodable frame: {exc}") from None
        for tag in skipped:
            count_skipped(state.skipped, tag)
        if skipped and not events:
            raise ParseError(f"frame holds only unknown ev types: {sorted(set(skipped))}")
        out = ParseOutput()
        for i, ev in enumerate(events):
            if isinstance(ev, wire.Status):
                state.statuses = [*state.statuses[-9:], (ev.status, ev.message)]
                continue
            try:
                rec = self._event(ev, i, env)
            except SymbolError as exc:
                raise ParseError(f"event {i}: {exc}") from None
            out.records.append(rec)
            if isinstance(ev, wire.TradeEv | wire.QuoteEv) and ev.q is not None:
                self._check_q(ev, rec, env, state, out)
        out.control = not out.records
        return out

    def _check_q(
        self,
        ev: wire.TradeEv | wire.QuoteEv,
        rec: Record,
        env: Envelope,
        state: PolygonState,
        out: ParseOutput,
    ) -> None:
        assert ev.q is not None
        key = ("T" if isinstance(ev, wire.TradeEv) else "Q", ev.sym)
        prev = state.last_q.get(key)
        if prev is not None and ev.q <= prev[0]:
            what = "repeat" if ev.q == prev[0] else "regression"
            out.gaps.append(
                seq_gap(
                    env,
                    rec.symbol,
                    before=prev[0],
                    after=ev.q,
                    ts_start=prev[1],
                    ts_end=rec.ts_event,
                    detail=f"{key[0]} q {what}: {ev.q} after {prev[0]}",
                )
            )
            if ev.q < prev[0]:
                return  # keep the high-water mark: later events are judged against it
        state.last_q[key] = (ev.q, rec.ts_event)

    def _event(self, ev: wire.Event, i: int, env: Envelope) -> Record:
        assert not isinstance(ev, wire.Status)
        sym = ev.sym
        if not sym.strip():
            raise ParseError(f"event {i}: empty symbol")
        opt = parse_option(sym) if sym.startswith("O:") else None
        ts_ms = ev.s if isinstance(ev, wire.SecondAgg | wire.MinuteAgg) else ev.t
        common: dict[str, Any] = {
            "symbol": opt.symbol if opt else sym,
            "asset_class": "option" if opt else "equity",
            "source": self.source,
            "stream": env.stream,
            "session": env.session,
            "seq": env.seq,
            "sub_seq": i,
            "ts_event": _ts(ts_ms, env.ts_recv),
            "ts_recv": env.ts_recv,
        }
        if isinstance(ev, wire.TradeEv):
            size = _units(ev.ds, "ds") if ev.ds is not None else _units(ev.s, "s")
            trade_id = ev.i
            if trade_id is None and opt is not None:
                trade_id = f"{ev.t}-{ev.q}"
            return Trade(
                **common,
                venue=None if ev.x is None else str(ev.x),
                price=_units(ev.p, "p"),
                size=size,
                trade_id=trade_id,
                conditions=tuple(str(c) for c in ev.c),
                underlying=opt.underlying if opt else None,
                expiry=opt.expiry if opt else None,
                right=cast(OptionRight, opt.right) if opt else None,
                strike=opt.strike if opt else None,
                tape=None if ev.z is None else str(ev.z),
                trf_id=None if ev.trfi is None else str(ev.trfi),
                trf_ts=None if ev.trft is None else _ts(ev.trft, env.ts_recv),
            )
        if isinstance(ev, wire.QuoteEv):
            lot = 1 if opt else ROUND_LOT
            return Quote(
                **common,
                bid_price=_units(ev.bp, "bp"),
                bid_size=_units(ev.bs, "bs") * lot,
                ask_price=_units(ev.ap, "ap"),
                ask_size=_units(ev.ask_size, "as") * lot,
                bid_venue=None if ev.bx is None else str(ev.bx),
                ask_venue=None if ev.ax is None else str(ev.ax),
                conditions=() if ev.c is None else (str(ev.c),),
            )
        return Bar(
            **common,
            timeframe="1s" if isinstance(ev, wire.SecondAgg) else "1m",
            open=_units(ev.o, "o"),
            high=_units(ev.h, "h"),
            low=_units(ev.l, "l"),
            close=_units(ev.c, "c"),
            volume=_units(ev.v, "v"),
            vwap=_units(ev.vw, "vw") if len(ev.vw) else None,
        )


PARSER = PolygonParser()
