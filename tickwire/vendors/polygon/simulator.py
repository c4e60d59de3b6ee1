"""Massive (formerly Polygon.io) WebSocket simulator: ``/stocks`` and ``/options`` plus the contracts listing.

Protocol as the real server: ``connected`` on open; ``auth`` within ``auth_timeout`` s or ``auth_timeout``
and close; ``auth_failed`` (then close) or ``auth_success``; a second authenticated connection of a key on
the same cluster evicts the older one (``max_connections``, close 1008); comma-separated
``subscribe``/``unsubscribe`` answered by one ``success`` status per channel ("subscribed to: T.SPY"),
nothing for a channel already held. Data frames are JSON arrays that mix events and ``ev`` types
(``batch`` events per frame), prices exact decimals, ``t`` in ms, per-ticker ``q`` increasing but not
contiguous, exchange ids, tape, conditions.

The option chain: strikes every ``strike_step`` around the underlying's start price, expiries today
(0DTE) and the next ``n_expiries - 1`` weekdays; ``GET /v3/reference/options/contracts`` lists them in
Massive's shape (``results``, ``next_url`` cursor pages). The underlying (``underlying``, default SPY)
walks with the generator, follows a ``schedule`` of prices (one every ``schedule_interval`` s) or is set on
command (``set_underlying`` or ``GET /sim/underlying?price=P``); each move prints one underlying trade.
Faults: the harness's drop/mute/malformed/oversize; reject_auth -> ``auth_failed``; skip_seq -> the next
event repeats its ticker's last ``q`` (what the parser calls a gap).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import msgspec
import orjson

from tickwire.simulators.base import Conn, RestAnswer, json_answer
from tickwire.simulators.market import now_ns, paced
from tickwire.simulators.market_server import MarketSim

Event = dict[str, Any]
_JSON = msgspec.json.Encoder()
CONTRACTS_PATH = "/v3/reference/options/contracts"


def encode(events: list[Event]) -> bytes:
    """One frame: a JSON array, Decimals written as exact JSON numbers."""
    return _JSON.encode([{k: _num(v) for k, v in e.items()} for e in events])


def _num(v: Any) -> Any:
    if isinstance(v, Decimal):
        return msgspec.Raw(format(v, "f").encode())
    return v


def status(st: str, message: str) -> Event:
    return {"ev": "status", "status": st, "message": message}


def option_ticker(root: str, expiry: dt.date, right: str, strike: Decimal) -> str:
    return f"O:{root}{expiry:%y%m%d}{right}{int(strike * 1000):08d}"


def trading_days(start: dt.date, n: int) -> list[dt.date]:
    out: list[dt.date] = []
    d = start
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += dt.timedelta(days=1)
    return out


class PolygonSimulator(MarketSim):
    name = "polygon"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        symbols: Iterable[str] = ("SPY", "AAPL"),
        batch: int = 3,
        credentials: set[str] | None = None,
        auth_timeout: float = 10.0,
        underlying: str = "SPY",
        underlying_price: Decimal = Decimal("670"),
        strike_step: Decimal = Decimal("1"),
        strike_range: int = 60,
        n_expiries: int = 4,
        schedule: Iterable[Decimal] = (),
        schedule_interval: float = 10.0,
        today: dt.date | None = None,
        **kw: Any,  # mode, rate, seed: see MarketSim
    ) -> None:
        super().__init__(host, port, **kw)
        self.batch = max(1, batch)
        self.symbols = list(dict.fromkeys([underlying, *symbols]))
        self.credentials = credentials  # None: any non-empty key is accepted
        self.auth_timeout = auth_timeout
        self.underlying = underlying
        self.schedule, self.schedule_interval = [Decimal(p) for p in schedule], schedule_interval
        self.prices: dict[str, Decimal] = {s: Decimal(100 + self.rng.randint(0, 300)) for s in self.symbols}
        self.prices[underlying] = Decimal(underlying_price)
        self.q: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.expiries = trading_days(today or dt.date.today(), n_expiries)
        centre = (Decimal(underlying_price) / strike_step).to_integral_value() * strike_step
        self.strikes = [centre + k * strike_step for k in range(-strike_range, strike_range + 1)]
        self.contracts = [
            (option_ticker(underlying, e, r, k), e, r, k)
            for e in self.expiries
            for k in self.strikes
            for r in "CP"
        ]

    def accepts(self, path: str) -> bool:
        return path in ("/stocks", "/options")

    # ------------------------------------------------------------------ protocol
    async def handle(self, conn: Conn) -> None:
        conn.state["actions"] = []
        await self.send(conn, encode([status("connected", "Connected Successfully")]))
        while True:
            timeout = None if conn.state.get("key") else self.auth_timeout
            try:
                raw = await asyncio.wait_for(conn.ws.recv(), timeout)
            except TimeoutError:
                await self.send(conn, encode([status("auth_timeout", "No authentication request received.")]))
                await conn.ws.close()
                return
            try:
                msg = orjson.loads(raw)
            except orjson.JSONDecodeError:
                msg = None
            if not isinstance(msg, dict) or not isinstance(msg.get("params"), str):
                await self.send(conn, encode([status("error", "invalid message")]))
            elif msg.get("action") == "auth":
                if not await self._auth(conn, msg["params"]):
                    return
            elif msg.get("action") in ("subscribe", "unsubscribe"):
                await self._subscribe(conn, msg["action"], msg["params"])
            else:
                await self.send(conn, encode([status("error", f"unknown action {msg.get('action')!r}")]))

    async def _auth(self, conn: Conn, key: str) -> bool:
        """False when the connection was closed."""
        bad = not key or (self.credentials is not None and key not in self.credentials)
        if bad or self.fault_active("reject_auth", conn) is not None:
            await self.send(conn, encode([status("auth_failed", "authentication failed")]))
            await conn.ws.close()
            return False
        for old in self.active():  # one connection per cluster per key: the older one goes
            if old is not conn and old.path == conn.path and old.state.get("key") == key:
                msg = "Maximum number of websocket connections exceeded."
                await self.send(old, encode([status("max_connections", msg)]))
                await old.ws.close(1008, "max_connections")
        conn.state["key"] = key
        await self.send(conn, encode([status("auth_success", "authenticated")]))
        return True

    async def _subscribe(self, conn: Conn, action: str, params: str) -> None:
        if not conn.state.get("key"):
            await self.send(conn, encode([status("error", "not authorized")]))
            return
        wanted = [p.strip() for p in params.split(",") if p.strip()]
        conn.state["actions"].append((action, wanted))
        replies = []
        for p in wanted:
            held = p in conn.subscriptions
            if action == "subscribe" and not held:
                conn.subscriptions.add(p)
                replies.append(status("success", f"subscribed to: {p}"))
            elif action == "unsubscribe" and held:
                conn.subscriptions.discard(p)
                replies.append(status("success", f"unsubscribed to: {p}"))
        for i in range(0, len(replies), 50):
            await self.send(conn, encode(replies[i : i + 50]))

    # ---------------------------------------------------------------------- data
    def wants(self, conn: Conn, e: Event) -> bool:
        if not conn.state.get("key") or (conn.path == "/options") != str(e["sym"]).startswith("O:"):
            return False
        subs = conn.subscriptions
        return f"{e['ev']}.{e['sym']}" in subs or f"{e['ev']}.*" in subs

    async def broadcast(self, events: list[Event]) -> None:
        for conn in self.active():
            mine = [e for e in events if self.wants(conn, e)]
            for i in range(0, len(mine), self.batch):
                await self.send(conn, encode(mine[i : i + self.batch]))

    def publish(self, events: list[Event], timeout: float = 5.0) -> None:
        """Thread-safe: broadcast exact events now."""
        assert self.loop is not None
        asyncio.run_coroutine_threadsafe(self.broadcast(events), self.loop).result(timeout)

    def set_underlying(self, price: Decimal, timeout: float = 5.0) -> None:
        """Thread-safe: move the underlying to ``price`` and print one trade there."""
        self.prices[self.underlying] = Decimal(price)
        if self.loop is not None:
            self.publish([self.trade(self.underlying)], timeout)

    def rest(self, method: str, path: str, query: dict[str, str]) -> RestAnswer | None:
        if path == CONTRACTS_PATH:
            return json_answer(self._contracts(query))
        if path == "/sim/underlying" and "price" in query:
            price = Decimal(query["price"])
            self.prices[self.underlying] = price
            if self.loop is not None:
                task = self.loop.create_task(self.broadcast([self.trade(self.underlying)]))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return json_answer({"ok": True, "price": str(price)})
        return None

    def _contracts(self, q: dict[str, str]) -> dict[str, Any]:
        rows = [c for c in self.contracts if q.get("underlying_ticker", self.underlying) == self.underlying]
        if "expiration_date.gte" in q:
            rows = [c for c in rows if c[1] >= dt.date.fromisoformat(q["expiration_date.gte"])]
        start, limit = int(q.get("cursor", 0)), min(1000, int(q.get("limit", 10)))
        page = rows[start : start + limit]
        results = [
            {
                "cfi": "OCASPS" if r == "C" else "OPASPS",
                "contract_type": "call" if r == "C" else "put",
                "exercise_style": "american",
                "expiration_date": e.isoformat(),
                "primary_exchange": "BATO",
                "shares_per_contract": 100,
                "strike_price": msgspec.json.decode(format(k, "f")),
                "ticker": t,
                "underlying_ticker": self.underlying,
            }
            for t, e, r, k in page
        ]
        out: dict[str, Any] = {"results": results, "status": "OK", "request_id": f"sim{start}"}
        if start + limit < len(rows):
            rest = "&".join(f"{k}={v}" for k, v in q.items() if k not in ("cursor", "apiKey"))
            out["next_url"] = f"{self.http_url}{CONTRACTS_PATH}?cursor={start + limit}&{rest}"
        return out

    def _next_q(self, sym: str) -> int:
        last = self.q.get(sym, 1000 * (1 + self.rng.randint(0, 50)))
        if self.take_skip():
            return last  # a repeat: the only sequence fault Massive's q can show
        self.q[sym] = last + self.rng.randint(1, 4)  # increasing, not contiguous
        return self.q[sym]

    def trade(self, sym: str, price: Decimal | None = None) -> Event:
        ms = now_ns() // 1_000_000
        px = self.prices[sym] if price is None else price
        if sym.startswith("O:"):
            size = self.rng.randint(1, 20)
            return {
                "ev": "T",
                "sym": sym,
                "x": 65,
                "p": px,
                "s": size,
                "c": [209],
                "t": ms,
                "q": self._next_q(sym),
            }
        x, tid, size = (
            self.rng.choice((4, 11, 12)),
            str(self.rng.randint(1, 10**14)),
            self.rng.choice((1, 100, 200)),
        )
        return {
            "ev": "T",
            "sym": sym,
            "x": x,
            "i": tid,
            "z": 1,
            "p": px,
            "s": size,
            "c": [0, 12],
            "t": ms,
            "q": self._next_q(sym),
        }

    def quote(self, sym: str) -> Event:
        ms, px = now_ns() // 1_000_000, self.prices[sym]
        tick = Decimal("0.05") if sym.startswith("O:") else Decimal("0.01")
        bs, as_ = self.rng.randint(1, 9), self.rng.randint(1, 9)
        e: Event = {
            "ev": "Q",
            "sym": sym,
            "bx": 11,
            "ax": 12,
            "bp": px - tick,
            "ap": px + tick,
            "bs": bs,
            "as": as_,
            "t": ms,
            "q": self._next_q(sym),
        }
        if not sym.startswith("O:"):
            e |= {"c": 1, "z": 1}
        return e

    def option_price(self, ticker: str) -> Decimal:
        _, _, right, strike = next(c for c in self.contracts if c[0] == ticker)
        u = self.prices[self.underlying]
        intrinsic = max(Decimal(0), u - strike if right == "C" else strike - u)
        return (intrinsic + Decimal("1.25")).quantize(Decimal("0.01"))

    def make_events(self, n: int) -> list[Event]:
        subscribed = sorted(
            {
                p.split(".", 1)[1]
                for c in self.active()
                if c.path == "/options"
                for p in c.subscriptions
                if p.startswith(("T.O:", "Q.O:"))
            }
        )
        out: list[Event] = []
        for _ in range(n):
            if subscribed and self.rng.random() < 0.5:
                t = self.rng.choice(subscribed)
                self.prices[t] = self.option_price(t)
                out.append(self.trade(t) if self.rng.random() < 0.6 else self.quote(t))
                continue
            sym = self.rng.choice(self.symbols)
            self.prices[sym] = max(Decimal("1"), self.prices[sym] + Decimal(self.rng.randint(-3, 3)) / 100)
            out.append(self.trade(sym) if self.rng.random() < 0.5 else self.quote(sym))
        return out

    async def background(self) -> None:
        if self.schedule:
            task = asyncio.create_task(self._follow_schedule())
            self._tasks.add(task)
        if self.mode != "generate" or self.rate <= 0:
            return
        async for due in paced(self.rate, 0.02):
            await self.broadcast(self.make_events(due))

    async def _follow_schedule(self) -> None:
        """The underlying jumps to each scheduled price in turn (looping), one trade printed there."""
        while True:
            for price in self.schedule:
                self.prices[self.underlying] = price
                await self.broadcast([self.trade(self.underlying)])
                await asyncio.sleep(self.schedule_interval)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, default=3, help="max events per frame")
    p.add_argument("--underlying-price", default="670", help="start price of the underlying")
    p.add_argument("--expiries", type=int, default=4, help="listed expiries (0DTE first)")
    p.add_argument(
        "--schedule", nargs="+", default=(), help="underlying prices to jump to in turn, e.g. 670 690"
    )
    p.add_argument("--schedule-interval", type=float, default=10.0, help="seconds between scheduled prices")


def build(args: argparse.Namespace, common: dict[str, Any]) -> PolygonSimulator:
    if args.mode == "replay":
        raise SystemExit("polygon: replay mode needs a recorded Massive session; none is available")
    return PolygonSimulator(
        args.host,
        args.port,
        batch=args.batch,
        underlying_price=Decimal(args.underlying_price),
        n_expiries=args.expiries,
        schedule=[Decimal(x) for x in args.schedule],
        schedule_interval=args.schedule_interval,
        **common,
    )
