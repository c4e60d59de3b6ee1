"""Generated Binance spot market: per-symbol order book with update ids, trades and klines.

Prices/quantities are integers in 1e-8 units (Binance's 8-decimal strings); every change to a book gets
the next update id, changes are coalesced into `depthUpdate` diffs per stream speed (100 ms / 1000 ms),
so U/u are continuous per symbol and per stream and the REST snapshot's lastUpdateId is consistent.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from tickwire.simulators.market import fmt_fixed

E8 = 100_000_000
INTERVALS_MS = {"1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000}
INTERVALS_MS |= {"1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000}
INTERVALS_MS |= {"12h": 43_200_000, "1d": 86_400_000}
Emit = list[tuple[str, dict[str, Any]]]  # (stream name, event data)


def d8(units: int) -> str:
    return fmt_fixed(units, 8)


@dataclass
class Diff:
    first: int = 0
    last: int = 0
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)


@dataclass
class Candle:
    open_ms: int
    o: int
    h: int
    low: int
    c: int
    first: int
    last: int
    v: int = 0
    q: int = 0
    n: int = 0
    vb: int = 0
    qb: int = 0


class SymbolBook:
    def __init__(self, symbol: str, mid: int, tick: int, rng: random.Random) -> None:
        self.symbol, self.stream, self.mid, self.tick, self.rng = symbol, symbol.lower(), mid, tick, rng
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.update_id = rng.randint(1_000_000, 9_000_000)
        self.trade_id = rng.randint(100_000, 900_000)
        self.agg_id = self.trade_id // 2
        self.diffs = {"100ms": Diff(), "1000ms": Diff()}
        self.candles: dict[str, Candle] = {}
        for k in range(1, 21):
            self.bids[mid - k * tick] = self._qty()
            self.asks[mid + k * tick] = self._qty()

    def _qty(self) -> int:
        return self.rng.randint(1, 5000) * 100_000  # lot 0.001

    def _set(self, side: str, price: int, qty: int, skip: bool) -> None:
        book = self.bids if side == "b" else self.asks
        if qty:
            book[price] = qty
        else:
            book.pop(price, None)
        self.update_id += 1 + (10 if skip else 0)
        for diff in self.diffs.values():
            diff.first = diff.first or self.update_id
            diff.last = self.update_id
            (diff.bids if side == "b" else diff.asks)[price] = qty

    def top(self) -> tuple[int, int, int, int]:
        bp, ap = max(self.bids), min(self.asks)
        return bp, self.bids[bp], ap, self.asks[ap]

    def book_change(self, skip: bool) -> Emit:
        """Move the mid now and then and change one level; a bookTicker when the top changed."""
        before = self.top()
        if self.rng.random() < 0.2:
            self.mid += self.rng.choice((-1, 1)) * self.tick
            for p in [p for p in self.bids if p >= self.mid]:
                self._set("b", p, 0, skip)
                skip = False
            for p in [p for p in self.asks if p <= self.mid]:
                self._set("a", p, 0, skip)
                skip = False
        side = self.rng.choice("ba")
        price = self.mid + (-1 if side == "b" else 1) * self.rng.randint(1, 20) * self.tick
        book = self.bids if side == "b" else self.asks
        remove = price in book and len(book) > 5 and self.rng.random() < 0.2
        self._set(side, price, 0 if remove else self._qty(), skip)
        return self._ticker() if self.top() != before else []

    def _ticker(self) -> Emit:
        bp, bq, ap, aq = self.top()
        data = {"u": self.update_id, "s": self.symbol, "b": d8(bp), "B": d8(bq), "a": d8(ap), "A": d8(aq)}
        return [(f"{self.stream}@bookTicker", data)]

    def trade(self, now_ms: int, intervals: set[str]) -> Emit:
        seller_aggr = self.rng.random() < 0.5  # buyer is maker
        bp, _, ap, _ = self.top()
        price = bp if seller_aggr else ap
        qty = self.rng.randint(1, 500) * 100_000
        self.trade_id += 1
        self.agg_id += 1
        p, q = d8(price), d8(qty)
        out: Emit = [
            (
                f"{self.stream}@trade",
                {
                    "e": "trade",
                    "E": now_ms,
                    "s": self.symbol,
                    "t": self.trade_id,
                    "p": p,
                    "q": q,
                    "T": now_ms,
                    "m": seller_aggr,
                    "M": True,
                },
            ),
            (
                f"{self.stream}@aggTrade",
                {
                    "e": "aggTrade",
                    "E": now_ms,
                    "s": self.symbol,
                    "a": self.agg_id,
                    "p": p,
                    "q": q,
                    "f": self.trade_id,
                    "l": self.trade_id,
                    "T": now_ms,
                    "m": seller_aggr,
                    "M": True,
                },
            ),
        ]
        for iv in sorted(intervals):
            out += self.roll(now_ms, iv)
            c = self.candles.setdefault(iv, self._candle(now_ms, iv, price))
            c.h, c.low, c.c, c.last = max(c.h, price), min(c.low, price), price, self.trade_id
            c.v, c.q, c.n = c.v + qty, c.q + price * qty // E8, c.n + 1
            if not seller_aggr:
                c.vb, c.qb = c.vb + qty, c.qb + price * qty // E8
            out.append(self._kline(now_ms, iv, c, closed=False))
        return out

    def _candle(self, now_ms: int, iv: str, price: int) -> Candle:
        ms = INTERVALS_MS[iv]
        return Candle(now_ms // ms * ms, price, price, price, price, self.trade_id, self.trade_id)

    def roll(self, now_ms: int, iv: str) -> Emit:
        """Close the interval's candle if its time is over (the `x: true` kline)."""
        c = self.candles.get(iv)
        if c is None or now_ms < c.open_ms + INTERVALS_MS[iv]:
            return []
        del self.candles[iv]
        return [self._kline(now_ms, iv, c, closed=True)]

    def _kline(self, now_ms: int, iv: str, c: Candle, closed: bool) -> tuple[str, dict[str, Any]]:
        k = {
            "t": c.open_ms,
            "T": c.open_ms + INTERVALS_MS[iv] - 1,
            "s": self.symbol,
            "i": iv,
            "f": c.first,
            "L": c.last,
            "o": d8(c.o),
            "c": d8(c.c),
            "h": d8(c.h),
            "l": d8(c.low),
            "v": d8(c.v),
            "n": c.n,
            "x": closed,
            "q": d8(c.q),
            "V": d8(c.vb),
            "Q": d8(c.qb),
            "B": "0",
        }
        return f"{self.stream}@kline_{iv}", {"e": "kline", "E": now_ms, "s": self.symbol, "k": k}

    def flush(self, speed: str, now_ms: int) -> Emit:
        """The coalesced diff of one stream speed since its last flush (nothing if no change)."""
        diff = self.diffs[speed]
        if not diff.first:
            return []
        self.diffs[speed] = Diff()
        data = {
            "e": "depthUpdate",
            "E": now_ms,
            "s": self.symbol,
            "U": diff.first,
            "u": diff.last,
            "b": [[d8(p), d8(q)] for p, q in sorted(diff.bids.items(), reverse=True)],
            "a": [[d8(p), d8(q)] for p, q in sorted(diff.asks.items())],
        }
        name = f"{self.stream}@depth@100ms" if speed == "100ms" else f"{self.stream}@depth"
        return [(name, data)]

    def snapshot(self, limit: int) -> dict[str, Any]:
        bids = sorted(self.bids.items(), reverse=True)[:limit]
        asks = sorted(self.asks.items())[:limit]
        return {
            "lastUpdateId": self.update_id,
            "bids": [[d8(p), d8(q)] for p, q in bids],
            "asks": [[d8(p), d8(q)] for p, q in asks],
        }

    def info(self) -> dict[str, Any]:
        quote = next((q for q in ("USDT", "USDC", "BTC", "ETH", "EUR") if self.symbol.endswith(q)), "USDT")
        return {
            "symbol": self.symbol,
            "status": "TRADING",
            "baseAsset": self.symbol[: -len(quote)],
            "baseAssetPrecision": 8,
            "quoteAsset": quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": d8(self.tick),
                    "maxPrice": "1000000.00000000",
                    "tickSize": d8(self.tick),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": "0.00100000",
                    "maxQty": "9000.00000000",
                    "stepSize": "0.00100000",
                },
            ],
        }
