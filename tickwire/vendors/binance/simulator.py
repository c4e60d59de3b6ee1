"""Binance spot WebSocket market streams simulator, with its REST snapshot endpoints on the same port.

Endpoints: `/stream?streams=a/b` (combined: `{"stream":…,"data":…}`), `/ws/<stream>` and `/ws` (raw data),
live `SUBSCRIBE` / `UNSUBSCRIBE` / `LIST_SUBSCRIPTIONS`; `GET /api/v3/exchangeInfo`, `GET /api/v3/depth`.
Server pings every `ping_interval` s; connections are closed after `max_lifetime` (Binance: 24 h).

Replay mode: every connection replays the recorded session from its start at recorded pacing x speed.
A recorded frame goes to a connection iff the connection is subscribed to its stream (URL or SUBSCRIBE):
combined connections get the recorded bytes exactly; raw `/ws` connections get the exact `data` slice.
The depth snapshot is not in the recording, so `/api/v3/depth` answers an empty book whose
lastUpdateId is the symbol's first recorded `U` - 1: applying every replayed diff is then consistent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from tickwire.simulators.base import Conn, RestAnswer, json_answer
from tickwire.simulators.market import add_replay_arguments, now_ns, paced, replay, replay_kwargs
from tickwire.simulators.market_server import ReplayMarketSim
from tickwire.vendors.binance.market import E8, INTERVALS_MS, Emit, SymbolBook

STREAM_RE = re.compile(
    r"^[a-z0-9]+@(aggTrade|trade|bookTicker|depth(@100ms|@1000ms)?|kline_(" + "|".join(INTERVALS_MS) + "))$"
)
_COMBINED_RE = re.compile(rb'^\{"stream":"([^"]+)","data":')
DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT")
MAX_STREAMS = 1024


class BinanceSimulator(ReplayMarketSim):
    name = "binance"
    default_rate = 50.0

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        symbols: Iterable[str] = DEFAULT_SYMBOLS,
        ping_interval: float | None = 20.0,
        max_lifetime: float | None = 86_400.0,
        **kw: Any,  # mode, rate, seed, recording, speed, loop: see ReplayMarketSim
    ) -> None:
        super().__init__(host, port, ping_interval=ping_interval, max_lifetime=max_lifetime, **kw)
        self.books = {
            s.upper(): SymbolBook(s.upper(), self.rng.randint(1_000, 90_000) * E8, E8 // 100, self.rng)
            for s in symbols
        }
        self._first_u: dict[str, int] = {}
        for _, payload in self.recording.frames:
            if b'"depthUpdate"' in payload:
                data = json.loads(payload)["data"]
                self._first_u.setdefault(data["s"], data["U"])

    def accepts(self, path: str) -> bool:
        return path in ("/stream", "/ws") or path.startswith("/ws/")

    # -------------------------------------------------------------- session
    async def handle(self, conn: Conn) -> None:
        parts = urlsplit(conn.path)
        conn.state["combined"] = parts.path == "/stream"
        initial = parts.path[4:].split("/") if parts.path.startswith("/ws/") else []
        initial += "/".join(parse_qs(parts.query).get("streams", [])).split("/")
        streams = [s for s in initial if s]
        if bad := [s for s in streams if not STREAM_RE.match(s)]:
            await conn.ws.close(1008, f"Invalid stream name {bad[0]}")
            return
        conn.state["streams"] = list(dict.fromkeys(streams))
        conn.subscriptions = set(conn.state["streams"])
        task = None
        if self.mode == "replay":
            task = asyncio.create_task(
                replay(
                    self,
                    conn,
                    self.recording.frames,
                    speed=self.speed,
                    loop=self.loop_replay,
                    select=self._select,
                )
            )
        try:
            async for raw in conn.ws:
                reply = self.control(conn, raw)
                await self.send(conn, orjson.dumps(reply))
        finally:
            if task is not None:
                task.cancel()

    def control(self, conn: Conn, raw: str | bytes) -> dict[str, Any]:
        """Answer one client request frame."""
        try:
            msg = json.loads(raw)
        except ValueError as exc:
            return {"code": 3, "msg": f"Invalid JSON: {exc}"}
        if not isinstance(msg, dict):
            return {"code": 3, "msg": "Invalid JSON: expected an object"}
        rid = msg.get("id")
        method, params = msg.get("method"), msg.get("params", [])
        if rid is not None and (isinstance(rid, bool) or not isinstance(rid, (int, str))):
            return {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer", "id": None}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": list(conn.state["streams"]), "id": rid}
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            return {"code": 2, "msg": f"Invalid request: unknown method {method!r}", "id": rid}
        if not isinstance(params, list) or not all(isinstance(p, str) and STREAM_RE.match(p) for p in params):
            return {"code": 2, "msg": "Invalid request: invalid stream name in 'params'", "id": rid}
        current: list[str] = conn.state["streams"]
        if method == "SUBSCRIBE":
            if len(set(current) | set(params)) > MAX_STREAMS:
                return {"code": 2, "msg": "Invalid request: too many streams", "id": rid}
            current += [p for p in params if p not in current]
        else:
            conn.state["streams"] = current = [s for s in current if s not in params]
        conn.subscriptions = set(current)
        return {"result": None, "id": rid}

    def _select(self, conn: Conn, payload: bytes) -> bytes | None:
        m = _COMBINED_RE.match(payload)
        if m is None or m.group(1).decode() not in conn.subscriptions:
            return None
        return payload if conn.state["combined"] else payload[m.end() : -1]

    def fault_frame(self, conn: Conn, kind: str, size: int) -> bytes:
        if kind == "malformed":
            return b'{"stream":"x@trade","data":{"e":"trade",'
        data = {"e": "trade", "E": now_ns() // 1_000_000, "s": "OVERSIZE", "pad": "x" * max(1, size)}
        return self._frame(conn, "oversize@trade", orjson.dumps(data))

    @staticmethod
    def _frame(conn: Conn, stream: str, data: bytes) -> bytes:
        if not conn.state.get("combined"):
            return data
        return b'{"stream":"' + stream.encode() + b'","data":' + data + b"}"

    # ------------------------------------------------------------ generator
    async def broadcast(self, events: Emit) -> None:
        conns = self.active()
        for stream, data in events:
            body = orjson.dumps(data)
            for conn in conns:
                if stream in conn.subscriptions:
                    await self.send(conn, self._frame(conn, stream, body))

    def _intervals(self) -> set[str]:
        return {s.rsplit("_", 1)[1] for c in self.active() for s in c.subscriptions if "@kline_" in s}

    async def background(self) -> None:
        if self.mode != "generate" or not self.books:
            return
        flusher = asyncio.create_task(self._flusher())
        try:
            if self.rate <= 0:
                await asyncio.Event().wait()
            books = list(self.books.values())
            async for due in paced(self.rate):
                out: Emit = []
                intervals, now_ms = self._intervals(), now_ns() // 1_000_000
                for _ in range(due):
                    book = self.rng.choice(books)
                    if self.rng.random() < 0.35:
                        out += book.trade(now_ms, intervals)
                    else:
                        out += book.book_change(self.take_skip())
                await self.broadcast(out)
        finally:
            flusher.cancel()

    async def _flusher(self) -> None:
        """Emit coalesced depth diffs every 100 ms / 1000 ms and close klines on time."""
        tick = 0
        while True:
            await asyncio.sleep(0.1)
            tick += 1
            now_ms, intervals = now_ns() // 1_000_000, self._intervals()
            out: Emit = []
            for book in self.books.values():
                out += book.flush("100ms", now_ms)
                if tick % 10 == 0:
                    out += book.flush("1000ms", now_ms)
                for iv in intervals:
                    out += book.roll(now_ms, iv)
            await self.broadcast(out)

    # ----------------------------------------------------------------- REST
    def rest(self, method: str, path: str, query: dict[str, str]) -> RestAnswer | None:
        if path == "/api/v3/exchangeInfo":
            for url, body in self.recording.rest.items():
                if urlsplit(url).path == path:
                    return 200, body, "application/json"
            info = {
                "timezone": "UTC",
                "serverTime": now_ns() // 1_000_000,
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": [b.info() for b in self.books.values()],
            }
            return json_answer(info)
        if path == "/api/v3/depth":
            symbol = query.get("symbol", "").upper()
            try:
                limit = min(5000, max(1, int(query.get("limit", "100"))))
            except ValueError:
                return json_answer(
                    {"code": -1100, "msg": "Illegal characters found in parameter 'limit'"}, 400
                )
            if self.mode == "replay" and symbol in self._first_u:
                return json_answer({"lastUpdateId": self._first_u[symbol] - 1, "bids": [], "asks": []})
            if self.mode != "replay" and symbol in self.books:
                return json_answer(self.books[symbol].snapshot(limit))
            return json_answer({"code": -1121, "msg": "Invalid symbol."}, 400)
        return None


RECORDED_FILES = ("cryptofeed-BINANCE.ws.1.0", "cryptofeed-BINANCE.0")  # ws session + its REST answers


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_replay_arguments(p)
    p.add_argument("--max-lifetime", type=float, default=86_400.0, help="connection lifetime, seconds")


def build(args: argparse.Namespace, common: dict[str, Any]) -> BinanceSimulator:
    kw = common | replay_kwargs(args, RECORDED_FILES)
    return BinanceSimulator(args.host, args.port, max_lifetime=args.max_lifetime, **kw)
