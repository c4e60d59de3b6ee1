"""The IBKR producer's request book and pacing (pure: no sockets, the clock is passed in).

``RequestBook`` plans what each symbol is subscribed to and remembers every reqId's context (symbol,
exchange, kind) so replies can be published with it:

- Level 2 symbols: depth per exchange of the L2 list; standard symbols: SMART depth;
  every symbol: tick-by-tick AllLast and BidAsk and 5 s real-time bars (SMART).
- 2152 on a depth request: that symbol+exchange falls back to top of book (reqMktData on that exchange).
- 309 on a depth request: that depth request is refused; the symbol falls back to standard data
  (reqMktData on the refused request's exchange).
- ``renew()``: every live subscription requested again under new reqIds (1101 data lost, 2103 -> 2104),
  the old ids' context kept so late replies still carry it.

``Pacer`` holds outgoing requests: a token bucket (``rate`` messages per second) for everything and a
sliding window (``rtb_max`` per ``rtb_window_s``) for new real-time-bar requests, which wait in their
own queue so a full window never blocks other requests.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from tickwire.vendors.ibkr import wire
from tickwire.vendors.ibkr import wire_requests as wr
from tickwire.vendors.ibkr.wire import Field
from tickwire.vendors.ibkr.wire_requests import Contract

DEPTH, TOP, TBT_LAST, TBT_BIDASK, BARS = "depth", "top", "tbt_last", "tbt_bidask", "bars5s"
KINDS = (DEPTH, TOP, TBT_LAST, TBT_BIDASK, BARS)
_TBT = {TBT_LAST: "AllLast", TBT_BIDASK: "BidAsk"}
_TBT_KIND = {v: k for k, v in _TBT.items()}


@dataclass(frozen=True, slots=True)
class Plan:
    """What the book requests: its L2 exchanges and options (from the settings)."""

    l2_exchanges: tuple[str, ...] = ("ARCA", "ISLAND", "BATS")
    depth_rows: int = 10
    tick_by_tick: tuple[str, ...] = ("AllLast", "BidAsk")
    real_time_bars: bool = True
    bars_what: str = "TRADES"
    bars_use_rth: bool = False
    currency: str = "USD"


@dataclass(frozen=True, slots=True)
class Sub:
    req_id: int
    kind: str
    symbol: str
    exchange: str

    @property
    def smart(self) -> bool:
        return self.exchange == "SMART"


class RequestBook:
    def __init__(self, plan: Plan, first_id: int = 1) -> None:
        self.plan = plan
        self._next = first_id
        self.live: dict[int, Sub] = {}
        self.known: dict[int, Sub] = {}  # every reqId ever used: replies after a cancel keep their context
        self.l2: set[str] = set()
        self.fallback: set[tuple[str, str]] = set()  # (symbol, exchange) on top of book instead of depth

    def _new(self, kind: str, symbol: str, exchange: str) -> Sub:
        sub = Sub(self._next, kind, symbol, exchange)
        self._next += 1
        self.live[sub.req_id] = sub
        self.known[sub.req_id] = sub
        return sub

    def reset_ids(self, next_valid_id: int) -> None:
        """A new connection: its nextValidId; nothing is live on it yet."""
        self._next = max(self._next, next_valid_id)
        self.live.clear()

    def context(self, req_id: int) -> Sub | None:
        return self.known.get(req_id)

    # -- planning --

    def add(self, symbol: str, l2: bool) -> list[Sub]:
        """New subscriptions for ``symbol`` (none when it is already subscribed)."""
        if any(s.symbol == symbol for s in self.live.values()):
            return []
        if l2:
            self.l2.add(symbol)
        out: list[Sub] = []
        for ex in self.plan.l2_exchanges if l2 else ("SMART",):
            kind = TOP if (symbol, ex) in self.fallback else DEPTH
            out.append(self._new(kind, symbol, ex))
        for tt in self.plan.tick_by_tick:
            out.append(self._new(_TBT_KIND.get(tt, TBT_LAST), symbol, "SMART"))
        if self.plan.real_time_bars:
            out.append(self._new(BARS, symbol, "SMART"))
        return out

    def remove(self, symbol: str) -> list[Sub]:
        """The live subscriptions of ``symbol``, dropped from the book (to be cancelled)."""
        gone = [s for s in self.live.values() if s.symbol == symbol]
        for s in gone:
            del self.live[s.req_id]
        self.l2.discard(symbol)
        return gone

    def fall_back(self, req_id: int) -> tuple[Sub | None, Sub | None]:
        """2152 / 309 on a depth request: (the depth sub dropped, its top-of-book replacement)."""
        sub = self.live.get(req_id)
        if sub is None or sub.kind != DEPTH:
            return None, None
        del self.live[req_id]
        self.fallback.add((sub.symbol, sub.exchange))
        return sub, self._new(TOP, sub.symbol, sub.exchange)

    def refused(self, req_id: int) -> Sub | None:
        """A request the server refused (e.g. pacing): no longer live, to be asked again later."""
        return self.live.pop(req_id, None)

    def again(self, sub: Sub) -> Sub:
        """Ask for ``sub`` again under a new reqId."""
        return self._new(sub.kind, sub.symbol, sub.exchange)

    def renew(self) -> tuple[list[Sub], list[Sub]]:
        """(old, new): every live subscription again under a new reqId."""
        old = sorted(self.live.values(), key=lambda s: s.req_id)
        self.live.clear()
        return old, [self._new(s.kind, s.symbol, s.exchange) for s in old]

    # -- encoding --

    def contract(self, sub: Sub) -> Contract:
        return Contract(sub.symbol, sub.exchange, self.plan.currency)

    def request(self, sub: Sub) -> list[Field]:
        c = self.contract(sub)
        if sub.kind == DEPTH:
            return wr.req_mkt_depth(sub.req_id, c, self.plan.depth_rows, sub.smart)
        if sub.kind == TOP:
            return wr.req_mkt_data(sub.req_id, c)
        if sub.kind in _TBT:
            return wr.req_tick_by_tick(sub.req_id, c, _TBT[sub.kind])
        return wr.req_real_time_bars(sub.req_id, c, self.plan.bars_what, self.plan.bars_use_rth)

    @staticmethod
    def cancel(sub: Sub) -> list[Field]:
        if sub.kind == DEPTH:
            return wr.cancel_mkt_depth(sub.req_id, sub.smart)
        if sub.kind == TOP:
            return wr.cancel_mkt_data(sub.req_id)
        if sub.kind in _TBT:
            return wr.cancel_tick_by_tick(sub.req_id)
        return wr.cancel_real_time_bars(sub.req_id)


class Pacer:
    """Outgoing message pacing: ``ready(now)`` pops what may be sent now, in order."""

    def __init__(self, rate: float = 45.0, rtb_max: int = 60, rtb_window_s: float = 600.0) -> None:
        self.rate = rate
        self.burst = max(1.0, rate)
        self.rtb_max, self.rtb_window_s = rtb_max, rtb_window_s
        self._tokens = self.burst
        self._t: float | None = None
        self._q: deque[bytes] = deque()
        self._rtb_q: deque[bytes] = deque()
        self._rtb_sent: deque[float] = deque()

    def __len__(self) -> int:
        return len(self._q) + len(self._rtb_q)

    def push(self, framed: bytes) -> None:
        """A framed client message; new real-time-bar requests (id 50) go through the window."""
        (self._rtb_q if wire.msg_id(framed[4:]) == wire.Out.REQ_REAL_TIME_BARS else self._q).append(framed)

    def _refill(self, now: float) -> None:
        if self._t is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._t) * self.rate)
        self._t = now

    def ready(self, now: float) -> list[bytes]:
        self._refill(now)
        while self._rtb_sent and now - self._rtb_sent[0] >= self.rtb_window_s:
            self._rtb_sent.popleft()
        out: list[bytes] = []
        while self._tokens >= 1.0 and (self._q or self._rtb_q):
            if self._rtb_q and len(self._rtb_sent) < self.rtb_max:
                out.append(self._rtb_q.popleft())
                self._rtb_sent.append(now)
            elif self._q:
                out.append(self._q.popleft())
            else:
                break  # only real-time-bar requests left and their window is full
            self._tokens -= 1.0
        return out

    def clear(self) -> None:
        """Drop every message not sent yet (shutdown: only the cancels go out)."""
        self._q.clear()
        self._rtb_q.clear()

    def rtb_waiting(self) -> int:
        return len(self._rtb_q)
