"""Vendor 5-second bars -> 1-minute bars (origin aggregated), closed by event time: pure and deterministic.

For the sources whose registry row says ``bar_rollup``: every ``Bar`` of timeframe ``5s`` (``ts_event`` =
its open) belongs to the minute window [t, t+60s) holding its open. Per symbol the watermark is the
largest 5 s bar END seen (open + 5 s); a window closes as soon as the watermark reaches its end, i.e. when
its last 5 s bar (open t+55s) or any later bar arrives. Wall clock is never read, so the same bars in the
same order always give the same minute bars; a minute without 5 s bars gives no bar.

A window keeps its (at most 12) constituent 5 s bars by open time; a repeated 5 s bar (same open, e.g.
re-sent after a resubscribe) replaces the earlier one instead of counting twice. A 5 s bar whose window
is already closed is late: left out (counted by the caller). The minute bar: open of the earliest
constituent, close of the latest, high/low over all, volume summed, vwap = sum(wap x volume) / volume
(rounded half to even to 1e-9; None when volume is 0 or a constituent with volume has no wap),
trade_count summed (None when one is missing), venue kept when all constituents share it, provenance of
the last constituent to arrive.

State per (raw partition, source), one store key per symbol: ``m|source|symbol``. Bounded: at most two
open windows per symbol (the current and, briefly, the previous one is already closed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from tickwire.contract.records import AssetClass, Bar
from tickwire.normalize.bars import MINUTE_NS, vwap, window_start

FIVE_S_NS = 5_000_000_000
PREFIX = b"m|"


class Part(msgspec.Struct, array_like=True):
    """One 5 s constituent: open time and values, with the provenance of its raw record."""

    start: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    wap: int | None
    count: int | None
    venue: str | None
    arrival: int  # order of arrival within the window


class Window(msgspec.Struct, kw_only=True):
    parts: dict[int, Part] = msgspec.field(default_factory=dict)
    arrivals: int = 0
    # Provenance of the last constituent to arrive.
    stream: str = ""
    session: int = 0
    seq: int = 0
    sub_seq: int = 0
    ts_recv: int = 0


class SymbolBars(msgspec.Struct, kw_only=True):
    symbol: str = ""
    asset_class: AssetClass = "equity"
    source: str = ""
    watermark: int | None = None
    windows: dict[int, Window] = msgspec.field(default_factory=dict)


@dataclass(slots=True)
class RollupStep:
    closed: list[Bar] = field(default_factory=list)
    late: int = 0


def key(source: str, symbol: str) -> bytes:
    return PREFIX + f"{source}|{symbol}".encode()


def add(state: SymbolBars, bar: Bar, step: RollupStep) -> None:
    """Fold one 5 s bar into its symbol's state; closed minute bars are appended to ``step``."""
    start = window_start(bar.ts_event)
    wm = state.watermark
    if wm is not None and start + MINUTE_NS <= wm:
        step.late += 1
        return
    state.symbol, state.asset_class, state.source = bar.symbol, bar.asset_class, bar.source
    w = state.windows.setdefault(start, Window())
    w.arrivals += 1
    w.parts[bar.ts_event] = Part(
        bar.ts_event, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.vwap, bar.trade_count,
        bar.venue, w.arrivals,
    )  # fmt: skip
    w.stream, w.session, w.seq, w.sub_seq, w.ts_recv = (
        bar.stream,
        bar.session,
        bar.seq,
        bar.sub_seq,
        bar.ts_recv,
    )
    end = bar.ts_event + FIVE_S_NS
    if wm is None or end > wm:
        state.watermark = wm = end
    for s in sorted(s for s in state.windows if s + MINUTE_NS <= wm):
        step.closed.append(minute_bar(state, s, state.windows.pop(s)))


def flush(state: SymbolBars) -> list[Bar]:
    """Close every open window now (the feed's session ended cleanly): the partial minute bars, oldest
    first. The watermark moves to the end of the last one, so a 5 s bar for a flushed minute is late."""
    out = [minute_bar(state, s, state.windows.pop(s)) for s in sorted(state.windows)]
    if out:
        end = out[-1].ts_event + MINUTE_NS
        state.watermark = end if state.watermark is None else max(state.watermark, end)
    return out


def minute_bar(like: SymbolBars, start: int, w: Window) -> Bar:
    parts = [w.parts[k] for k in sorted(w.parts)]
    volume = sum(p.volume for p in parts)
    pv: int | None = 0
    for p in parts:
        if p.volume and p.wap is None:
            pv = None
            break
        if pv is not None and p.wap is not None:
            pv += p.wap * p.volume
    counts = [p.count for p in parts]
    venues = {p.venue for p in parts}
    return Bar(
        symbol=like.symbol,
        asset_class=like.asset_class,
        source=like.source,
        venue=venues.pop() if len(venues) == 1 else None,
        stream=w.stream,
        session=w.session,
        seq=w.seq,
        sub_seq=w.sub_seq,
        ts_event=start,
        ts_recv=w.ts_recv,
        timeframe="1m",
        open=parts[0].open,
        high=max(p.high for p in parts),
        low=min(p.low for p in parts),
        close=parts[-1].close,
        volume=volume,
        vwap=None if pv is None else vwap(pv, volume),
        trade_count=None if None in counts else sum(c for c in counts if c is not None),
        origin="aggregated",
    )
