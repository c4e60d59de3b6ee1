"""The IBKR simulator's market: deterministic message generators per subscription (pure, no I/O).

Each subscription (depth, top of book, tick-by-tick AllLast/BidAsk, 5 s bars) owns a ``random.Random``
seeded from ``(seed, symbol, exchange, kind)``, so the same seed gives the same message sequence for the
same requests. Prices are integer cents rendered as decimal text; sizes are shares.

Depth keeps a real book per side with TWS position semantics: an insert at ``position`` shifts the rows
at and below it down, a delete shifts the rows below it up, an update replaces the row in place; bids
stay descending, asks ascending, and the book never crosses.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tickwire.vendors.ibkr.wire import MktDepthL2, Msg, RealTimeBar, TickBidAsk, TickLast, TickPrice, TickSize

BASE_CENTS = {"SPY": 60000, "QQQ": 52000, "IWM": 23000, "AAPL": 23000, "MSFT": 51000}
MARKET_MAKERS = {"ARCA": "ARCA", "ISLAND": "NSDQ", "BATS": "BATS", "IEX": "IEX", "NYSE": "NYSE"}
SMART_MAKERS = ("ARCA", "NSDQ", "BATS", "EDGX", "IEX")
TRADE_EXCHANGES = ("ARCA", "NASDAQ", "BATS", "IEX", "NYSE", "FINRA")


def base_cents(symbol: str) -> int:
    if symbol in BASE_CENTS:
        return BASE_CENTS[symbol]
    return 5000 + sum(map(ord, symbol)) * 37 % 40000


def px(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


@dataclass
class Level:
    cents: int
    size: int
    mm: str


@dataclass
class DepthBook:
    """One depth subscription's book (rows per side) and its message generator."""

    req_id: int
    symbol: str
    exchange: str
    smart: bool
    rows: int
    rng: random.Random
    bids: list[Level] = field(default_factory=list)
    asks: list[Level] = field(default_factory=list)

    def _mm(self) -> str:
        if self.exchange == "SMART":
            return self.rng.choice(SMART_MAKERS)
        return MARKET_MAKERS.get(self.exchange, self.exchange)

    def next(self) -> MktDepthL2:
        side = self.rng.randrange(2)  # 0 ask, 1 bid
        book = self.bids if side else self.asks
        base = base_cents(self.symbol)
        r = self.rng.random()
        if book and (len(book) >= self.rows or r < 0.35):
            pos = self.rng.randrange(len(book))
            if r < 0.15 and len(book) > 2:
                lvl = book.pop(pos)
                return self._msg(pos, lvl.mm, 2, side, lvl.cents, lvl.size)
            lvl = book[pos]
            lvl.size = 100 * self.rng.randint(1, 30)
            return self._msg(pos, lvl.mm, 1, side, lvl.cents, lvl.size)
        taken = {lvl.cents for lvl in book}
        for _ in range(20):
            off = self.rng.randint(1, 3 * self.rows)
            cents = base - off if side else base + off
            if cents not in taken:
                break
        else:  # every nearby price is taken: update the top row instead
            lvl = book[0]
            lvl.size = 100 * self.rng.randint(1, 30)
            return self._msg(0, lvl.mm, 1, side, lvl.cents, lvl.size)
        pos = sum(1 for lvl in book if (lvl.cents > cents if side else lvl.cents < cents))
        new = Level(cents, 100 * self.rng.randint(1, 30), self._mm())
        book.insert(pos, new)
        return self._msg(pos, new.mm, 0, side, new.cents, new.size)

    def _msg(self, pos: int, mm: str, op: int, side: int, cents: int, size: int) -> MktDepthL2:
        return MktDepthL2(self.req_id, pos, mm, op, side, px(cents), str(size), self.smart)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()


def rng_for(seed: int, symbol: str, exchange: str, kind: str) -> random.Random:
    return random.Random(f"{seed}|{symbol}|{exchange}|{kind}")


def trade(req_id: int, symbol: str, rng: random.Random, t: int, tick_type: int = 2) -> TickLast:
    cents = base_cents(symbol) + rng.randint(-8, 8)
    mask = 2 if rng.random() < 0.05 else 0
    cond = rng.choice(("", "", "", " I", "T"))
    return TickLast(
        req_id,
        tick_type,
        t,
        px(cents),
        str(rng.choice((1, 10, 100, 100, 200, 500))),
        mask,
        rng.choice(TRADE_EXCHANGES),
        cond,
    )


def bid_ask(req_id: int, symbol: str, rng: random.Random, t: int) -> TickBidAsk:
    base = base_cents(symbol)
    bid = base - rng.randint(1, 3)
    ask = base + rng.randint(1, 3)
    return TickBidAsk(
        req_id, 3, t, px(bid), px(ask), str(100 * rng.randint(1, 20)), str(100 * rng.randint(1, 20)), 0
    )


def bar(req_id: int, symbol: str, rng: random.Random, t: int) -> RealTimeBar:
    base = base_cents(symbol)
    o, c = base + rng.randint(-10, 10), base + rng.randint(-10, 10)
    hi = max(o, c) + rng.randint(0, 5)
    lo = min(o, c) - rng.randint(0, 5)
    vol = 100 * rng.randint(1, 200)
    wap_milli = (o + c) * 5  # (o + c) / 2 in cents -> thousandths of a dollar
    wap = f"{wap_milli // 1000}.{wap_milli % 1000:03d}"
    return RealTimeBar(req_id, t, px(o), px(hi), px(lo), px(c), str(vol), wap, rng.randint(1, 80))


def top(req_id: int, symbol: str, rng: random.Random, step: int) -> Msg:
    """reqMktData replies cycle: bid price, ask price, bid size, ask size (tick types 1, 2, 0, 3)."""
    base = base_cents(symbol)
    k = step % 4
    size = str(100 * rng.randint(1, 20))
    if k == 0:
        return TickPrice(req_id, 1, px(base - rng.randint(1, 3)), size, 1)
    if k == 1:
        return TickPrice(req_id, 2, px(base + rng.randint(1, 3)), size, 0)
    return TickSize(req_id, 0 if k == 2 else 3, size)
