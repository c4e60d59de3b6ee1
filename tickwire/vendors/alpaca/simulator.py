"""Alpaca market-data stream simulator (stocks /v2/{iex,sip,test}, crypto /v1beta3/crypto/<loc>).

JSON text frames by default; if the upgrade request carries `Content-Type: application/msgpack` (as
alpaca-py sends) every frame both ways is MessagePack, with `t` as a msgpack Timestamp ext. Numbers are
held as Decimal and written as exact JSON numbers (`150.25`, never float noise).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import msgpack
import msgspec
from websockets.http11 import Request

from tickwire.simulators.base import Conn
from tickwire.simulators.market import Walk, fmt_trim, now_ns, paced, rfc3339_ns
from tickwire.simulators.market_server import MarketSim

Event = dict[str, Any]
STOCK_CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
CRYPTO_CHANNELS = ("trades", "quotes", "orderbooks", "bars", "updatedBars", "dailyBars")
CHANNEL_OF = {"t": "trades", "q": "quotes", "b": "bars", "u": "updatedBars", "d": "dailyBars"}
CHANNEL_OF |= {"s": "statuses", "l": "lulds", "o": "orderbooks"}
ERRORS = {
    400: "invalid syntax",
    401: "not authenticated",
    402: "auth failed",
    403: "already authenticated",
    404: "auth timeout",
    405: "symbol limit exceeded",
    406: "connection limit exceeded",
    407: "slow client",
    409: "insufficient subscription",
    500: "internal error",
}
DEFAULT_SYMBOLS = ("AAPL", "MSFT", "SPY", "BTC/USD", "ETH/USD")
_JSON = msgspec.json.Encoder()


def encode(events: list[Event], binary: bool) -> bytes:
    """One Alpaca frame (an array of messages) as JSON text bytes or MessagePack."""
    if binary:
        packed: bytes = msgpack.packb([_wire(e, True) for e in events], default=_mp_default)
        return packed
    return _JSON.encode([_wire(e, False) for e in events])


def _wire(e: Event, binary: bool) -> Event:
    out = {k: _num(v, binary) for k, v in e.items()}
    if isinstance(e.get("t"), int):
        ns: int = e["t"]
        out["t"] = msgpack.Timestamp.from_unix_nano(ns) if binary else rfc3339_ns(ns)
    return out


def _num(v: Any, binary: bool) -> Any:
    if isinstance(v, Decimal):
        return v if binary else msgspec.Raw(format(v, "f").encode())
    if isinstance(v, list):
        return [_num(x, binary) for x in v]
    if isinstance(v, dict):
        return {k: _num(x, binary) for k, x in v.items()}
    return v


def _mp_default(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)  # Alpaca's msgpack frames carry float64 numbers
    raise TypeError(f"cannot pack {type(v)}")


class AlpacaSimulator(MarketSim):
    name = "alpaca"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        symbols: Iterable[str] = DEFAULT_SYMBOLS,
        batch: int = 1,
        credentials: dict[str, str] | None = None,
        auth_timeout: float = 10.0,
        symbol_limit: int | None = None,
        sip_keys: set[str] | None = None,
        bar_interval: float = 60.0,
        **kw: Any,  # mode, rate, seed: see MarketSim
    ) -> None:
        super().__init__(host, port, **kw)
        self.batch = max(1, batch)
        self.symbols = list(symbols)
        self.credentials = credentials  # None: any non-empty key/secret is accepted
        self.auth_timeout, self.symbol_limit, self.sip_keys = auth_timeout, symbol_limit, sip_keys
        self.bar_interval = bar_interval
        self.keys_in_use: dict[str, int] = {}  # key -> conn id (one connection per key)
        self._walks = {s: Walk(self._start_price(s), 100, 3, self.rng) for s in self.symbols}
        self._trade_id = dict.fromkeys(self.symbols, 1)
        self._bars: dict[str, list[Any]] = {}

    def accepts(self, path: str) -> bool:
        return path in ("/v2/iex", "/v2/sip", "/v2/test", "/v2/delayed_sip") or path.startswith(
            "/v1beta3/crypto/"
        )

    def on_connect(self, conn: Conn, request: Request) -> None:
        conn.binary = request.headers.get("Content-Type", "").lower() == "application/msgpack"
        conn.state["crypto"] = conn.path.startswith("/v1beta3/crypto/")
        conn.state["subs"] = {c: [] for c in self._channels(conn)}

    def _channels(self, conn: Conn) -> tuple[str, ...]:
        return CRYPTO_CHANNELS if conn.state["crypto"] else STOCK_CHANNELS

    # ------------------------------------------------------------- protocol
    async def handle(self, conn: Conn) -> None:
        await self._reply(conn, [{"T": "success", "msg": "connected"}])
        try:
            while True:
                timeout = None if conn.state.get("key") else self.auth_timeout
                try:
                    raw = await asyncio.wait_for(conn.ws.recv(), timeout)
                except TimeoutError:
                    await self._error(conn, 404)
                    await conn.ws.close()
                    return
                msg = self._decode(raw)
                if not isinstance(msg, dict) or not isinstance(msg.get("action"), str):
                    await self._error(conn, 400)
                elif msg["action"] == "auth":
                    if not await self._auth(conn, msg):
                        return
                elif msg["action"] in ("subscribe", "unsubscribe"):
                    await self._subscribe(conn, msg)
                else:
                    await self._error(conn, 400)
        finally:
            key = conn.state.get("key")
            if key is not None and self.keys_in_use.get(key) == conn.id:
                del self.keys_in_use[key]

    def _decode(self, raw: str | bytes) -> Any:
        try:
            return msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)
        except ValueError:
            return None

    async def _auth(self, conn: Conn, msg: dict[str, Any]) -> bool:
        """False when the connection was closed."""
        key, secret = msg.get("key"), msg.get("secret")
        if conn.state.get("key"):
            await self._error(conn, 403)
        elif (
            self.fault_active("reject_auth", conn) is not None
            or not key
            or not secret
            or (self.credentials is not None and self.credentials.get(str(key)) != secret)
        ):
            await self._error(conn, 402)
        elif str(key) in self.keys_in_use:
            await self._error(conn, 406)
            await conn.ws.close()
            return False
        elif conn.path == "/v2/sip" and self.sip_keys is not None and key not in self.sip_keys:
            await self._error(conn, 409)
        else:
            conn.state["key"] = str(key)
            self.keys_in_use[str(key)] = conn.id
            await self._reply(conn, [{"T": "success", "msg": "authenticated"}])
        return True

    async def _subscribe(self, conn: Conn, msg: dict[str, Any]) -> None:
        if not conn.state.get("key"):
            await self._error(conn, 401)
            return
        subs: dict[str, list[str]] = conn.state["subs"]
        new = {c: list(v) for c, v in subs.items()}
        for channel in subs:
            wanted = msg.get(channel) or []
            if not isinstance(wanted, list) or not all(isinstance(s, str) for s in wanted):
                await self._error(conn, 400)
                return
            if msg["action"] == "subscribe":
                new[channel] += [s for s in wanted if s not in new[channel]]
            else:
                new[channel] = [s for s in new[channel] if s not in wanted]
        distinct = {s for v in new.values() for s in v if s != "*"}
        if self.symbol_limit is not None and len(distinct) > self.symbol_limit:
            await self._error(conn, 405)
            return
        conn.state["subs"] = new
        conn.subscriptions = {f"{c}:{s}" for c, v in new.items() for s in v}
        await self._reply(conn, [{"T": "subscription", **new}])

    async def _error(self, conn: Conn, code: int) -> None:
        await self._reply(conn, [{"T": "error", "code": code, "msg": ERRORS[code]}])

    async def _reply(self, conn: Conn, events: list[Event]) -> None:
        await self.send(conn, encode(events, conn.binary))

    def fault_frame(self, conn: Conn, kind: str, size: int) -> bytes:
        if kind == "malformed":
            return b"\xc1\x91" if conn.binary else b'[{"T":"t","S":'
        big = [{"T": "t", "S": "OVERSIZE", "c": ["@" * max(1, size - 40)]}]
        return encode(big, conn.binary)

    # ----------------------------------------------------------------- data
    def wants(self, conn: Conn, e: Event) -> bool:
        if not conn.state.get("key") or conn.state["crypto"] != ("/" in str(e.get("S", ""))):
            return False
        listed = conn.state["subs"].get(CHANNEL_OF.get(str(e.get("T")), ""), [])
        return "*" in listed or e.get("S") in listed

    async def broadcast(self, events: list[Event]) -> None:
        """Send events to every subscribed connection, at most `batch` messages per frame."""
        for conn in self.active():
            mine = [e for e in events if self.wants(conn, e)]
            for i in range(0, len(mine), self.batch):
                await self.send(conn, encode(mine[i : i + self.batch], conn.binary))

    def publish(self, events: list[Event], timeout: float = 5.0) -> None:
        """Thread-safe: broadcast exact events (`t` int ns, numbers as Decimal) now."""
        assert self.loop is not None
        asyncio.run_coroutine_threadsafe(self.broadcast(events), self.loop).result(timeout)

    async def background(self) -> None:
        if self.mode != "generate" or self.rate <= 0 or not self.symbols:
            return
        next_bar = (now_ns() // int(self.bar_interval * 1e9) + 1) * int(self.bar_interval * 1e9)
        # batching needs several events per wake-up: a 20 ms window, as the vendor coalesces
        async for due in paced(self.rate, 0.02 if self.batch > 1 else 0.001):
            events = [self.make_event(self.rng.choice(self.symbols)) for _ in range(due)]
            if now_ns() >= next_bar:
                events += self._close_bars(next_bar - int(self.bar_interval * 1e9))
                next_bar += int(self.bar_interval * 1e9)
            await self.broadcast(events)

    def make_event(self, sym: str) -> Event:
        crypto, ts = "/" in sym, now_ns()
        px = self._walks[sym].next()
        dec = 4
        if self.rng.random() < 0.5:
            size = (
                Decimal(fmt_trim(self.rng.randint(1, 50_000), 4))
                if crypto
                else self.rng.choice((1, 100, 200))
            )
            tid = self._trade_id[sym] + (1000 if self.take_skip() else 0)
            self._trade_id[sym] = tid + 1
            bar = self._bars.setdefault(sym, [px, px, px, px, Decimal(0), 0])
            bar[1], bar[2], bar[3] = max(bar[1], px), min(bar[2], px), px
            bar[4] += Decimal(size)
            bar[5] += 1
            if crypto:
                tks = self.rng.choice("BS")
                return {
                    "T": "t",
                    "S": sym,
                    "p": Decimal(fmt_trim(px, dec)),
                    "s": size,
                    "t": ts,
                    "i": tid,
                    "tks": tks,
                }
            return {
                "T": "t",
                "S": sym,
                "i": tid,
                "x": "V",
                "p": Decimal(fmt_trim(px, dec)),
                "s": size,
                "c": ["@"],
                "z": "C",
                "t": ts,
            }
        bp, ap = Decimal(fmt_trim(px - 100, dec)), Decimal(fmt_trim(px + 100, dec))
        if crypto:
            bs, as_ = (Decimal(fmt_trim(self.rng.randint(1, 90_000), 4)) for _ in range(2))
            return {"T": "q", "S": sym, "bp": bp, "bs": bs, "ap": ap, "as": as_, "t": ts}
        return {
            "T": "q",
            "S": sym,
            "bx": "V",
            "bp": bp,
            "bs": self.rng.randint(1, 9),
            "ax": "V",
            "ap": ap,
            "as": self.rng.randint(1, 9),
            "c": ["R"],
            "z": "C",
            "t": ts,
        }

    def _close_bars(self, open_ns: int) -> list[Event]:
        out = []
        for sym, (o, h, lo, c, v, n) in sorted(self._bars.items()):
            out.append(
                {
                    "T": "b",
                    "S": sym,
                    "o": Decimal(fmt_trim(o, 4)),
                    "h": Decimal(fmt_trim(h, 4)),
                    "l": Decimal(fmt_trim(lo, 4)),
                    "c": Decimal(fmt_trim(c, 4)),
                    "v": v,
                    "n": n,
                    "vw": Decimal(fmt_trim((o + h + lo + c) // 4, 4)),
                    "t": open_ns,
                }
            )
        self._bars.clear()
        return out

    def _start_price(self, sym: str) -> int:
        base = {"AAPL": 150.25, "MSFT": 410.1, "SPY": 590.5, "BTC/USD": 97000.0, "ETH/USD": 3400.0}
        return int(base.get(sym, 50 + self.rng.randint(0, 20_000) / 100) * 100) * 100


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, default=1, help="max messages per frame")
    p.add_argument("--bar-interval", type=float, default=60.0, help="generated bar interval, seconds")


def build(args: argparse.Namespace, common: dict[str, Any]) -> AlpacaSimulator:
    if args.mode == "replay":
        raise SystemExit("alpaca: replay mode needs a recorded Alpaca session; none is available")
    return AlpacaSimulator(args.host, args.port, batch=args.batch, bar_interval=args.bar_interval, **common)
