"""Event-time 1-minute bars from trades: a pure, deterministic state machine.

Windows are [t, t+60s) in ``ts_event`` (ns, UTC minute boundaries). A watermark is kept per state object
(the caller keeps one per (raw partition, source)): the largest trade ``ts_event`` seen. Window
[t, t+60s) closes when the watermark reaches t + 60s + lateness, for every symbol in that state at once,
so a quiet symbol's bar closes as soon as its partition's clock has moved on (a per-symbol watermark would
hold it open until that symbol trades again). Wall clock is never read: the same trades in the same order
always give the same bars, and a minute without trades gives no bar (no synthetic empty bars).

A trade whose window is already closed is late: it is counted by the caller and left out of bars (the
trade itself is still published). Inside an open window trades may come out of order: open/close are the
trades with the smallest/largest ``ts_event`` (ties: first/last to arrive).

vwap = sum(price*size) / sum(size) in 1e-9 units, exact when it divides exactly, otherwise rounded half
to even to 1e-9; None when the volume is 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from tickwire.contract.records import Bar, Trade

MINUTE_NS = 60_000_000_000


class OpenBar(msgspec.Struct, kw_only=True):
    symbol: str
    asset_class: str
    source: str
    start: int
    open: int
    open_ts: int
    high: int
    low: int
    close: int
    close_ts: int
    volume: int
    pv: int  # sum(price*size), 1e-18 units; unbounded int (msgspec JSON keeps big ints exact)
    count: int
    venue: str | None
    mixed_venue: bool = False
    # Provenance: the last trade (by arrival) included in the bar.
    stream: str
    session: int
    seq: int
    sub_seq: int
    ts_recv: int


class PartitionBars(msgspec.Struct, kw_only=True):
    watermark: int | None = None
    # symbol -> window start -> open bar. With lateness < 60 s a symbol has at most two open windows.
    bars: dict[str, dict[int, OpenBar]] = msgspec.field(default_factory=dict)
    # Earliest watermark at which some open window closes (None: nothing open); spares a scan per trade.
    next_close: int | None = None


@dataclass(slots=True)
class BarStep:
    closed: list[Bar] = field(default_factory=list)
    late: int = 0  # trades left out of bars (their window had closed)
    touched: set[str] = field(default_factory=set)  # symbols whose open bars changed (to persist)


def window_start(ts_event: int) -> int:
    return ts_event - ts_event % MINUTE_NS


def vwap(pv: int, volume: int) -> int | None:
    """pv (1e-18 units) / volume (1e-9 units) -> 1e-9 units, rounded half to even."""
    if volume == 0:
        return None
    q, r = divmod(pv, volume)  # floor division; volume > 0 for valid trades
    twice = 2 * r
    if twice > volume or (twice == volume and q % 2 == 1):
        q += 1
    return q


def to_bar(ob: OpenBar) -> Bar:
    return Bar(
        symbol=ob.symbol,
        asset_class=ob.asset_class,  # type: ignore[arg-type]
        source=ob.source,
        venue=None if ob.mixed_venue else ob.venue,
        stream=ob.stream,
        session=ob.session,
        seq=ob.seq,
        sub_seq=ob.sub_seq,
        ts_event=ob.start,
        ts_recv=ob.ts_recv,
        timeframe="1m",
        open=ob.open,
        high=ob.high,
        low=ob.low,
        close=ob.close,
        volume=ob.volume,
        vwap=vwap(ob.pv, ob.volume),
        trade_count=ob.count,
        origin="aggregated",
    )


class BarAggregator:
    def __init__(self, lateness_ns: int = 0) -> None:
        if lateness_ns < 0:
            raise ValueError("lateness must be >= 0")
        self.lateness_ns = lateness_ns

    def closes_at(self, start: int) -> int:
        """Watermark at which window [start, start+60s) closes."""
        return start + MINUTE_NS + self.lateness_ns

    def on_trade(self, state: PartitionBars, t: Trade) -> BarStep:
        return self.on_trades(state, (t,))

    def on_trades(self, state: PartitionBars, trades: Iterable[Trade]) -> BarStep:
        """The trades in order, as ``on_trade`` one by one would take them, into one step."""
        step = BarStep()
        span = MINUTE_NS + self.lateness_ns  # window_start and closes_at (start + span) inlined per trade
        touched = step.touched
        for t in trades:
            ev = t.ts_event
            start = ev - ev % MINUTE_NS
            wm = state.watermark
            if wm is not None and start + span <= wm:
                step.late += 1
                continue
            self._add(state, t, start)
            touched.add(t.symbol)
            if wm is None or ev > wm:
                state.watermark = ev
                if state.next_close is not None and ev >= state.next_close:
                    self._close(state, step)
        return step

    def _add(self, state: PartitionBars, t: Trade, start: int) -> None:
        windows = state.bars.setdefault(t.symbol, {})
        ob = windows.get(start)
        if ob is None:
            due = self.closes_at(start)
            if state.next_close is None or due < state.next_close:
                state.next_close = due
            windows[start] = OpenBar(
                symbol=t.symbol,
                asset_class=t.asset_class,
                source=t.source,
                start=start,
                open=t.price,
                open_ts=t.ts_event,
                high=t.price,
                low=t.price,
                close=t.price,
                close_ts=t.ts_event,
                volume=t.size,
                pv=t.price * t.size,
                count=1,
                venue=t.venue,
                stream=t.stream,
                session=t.session,
                seq=t.seq,
                sub_seq=t.sub_seq,
                ts_recv=t.ts_recv,
            )
            return
        price, ev = t.price, t.ts_event
        if ev < ob.open_ts:
            ob.open, ob.open_ts = price, ev
        if ev >= ob.close_ts:
            ob.close, ob.close_ts = price, ev
        if price > ob.high:
            ob.high = price
        elif price < ob.low:  # low <= high: a new high is never a new low
            ob.low = price
        ob.volume += t.size
        ob.pv += price * t.size
        ob.count += 1
        if t.venue != ob.venue:
            ob.mixed_venue = True
        ob.stream, ob.session, ob.seq, ob.sub_seq, ob.ts_recv = (
            t.stream,
            t.session,
            t.seq,
            t.sub_seq,
            t.ts_recv,
        )

    def _close(self, state: PartitionBars, step: BarStep) -> None:
        wm = state.watermark
        assert wm is not None
        if state.next_close is None or wm < state.next_close:
            return
        due: list[tuple[int, str]] = []
        remaining: int | None = None
        for symbol, windows in state.bars.items():
            for start in windows:
                at = self.closes_at(start)
                if at <= wm:
                    due.append((start, symbol))
                elif remaining is None or at < remaining:
                    remaining = at
        state.next_close = remaining
        # Deterministic emission order: by window, then symbol.
        for start, symbol in sorted(due):
            windows = state.bars[symbol]
            step.closed.append(to_bar(windows.pop(start)))
            step.touched.add(symbol)
            if not windows:
                del state.bars[symbol]
