"""Coinbase Exchange WebSocket feed simulator (`heartbeat`, `ticker`, `matches`, `level2`), REST `/products`.

Generate mode: per-product book and trades; `sequence` advances for every underlying order event (so,
as on the real feed, a `matches` subscriber sees non-contiguous sequences while `trade_id` is contiguous).
A `skip_seq` fault jumps both sequence and trade_id of the next match (missed trades).

Replay mode: the recording starts after the client's subscribe frames, so a connection's replay starts
at its first `subscribe` and sends every recorded frame (including the recorded `subscriptions`
answers) as the exact recorded bytes, regardless of what was asked: the recording is what the vendor
sent for the recorded subscription. Later subscribes on that connection get no extra answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import uuid
from collections.abc import Iterable
from typing import Any

import orjson

from tickwire.simulators.base import Conn, RestAnswer, json_answer
from tickwire.simulators.market import (
    add_replay_arguments,
    fmt_fixed,
    fmt_trim,
    iso_us,
    now_ns,
    paced,
    replay,
    replay_kwargs,
)
from tickwire.simulators.market_server import ReplayMarketSim

CHANNELS = ("heartbeat", "ticker", "matches", "level2", "level2_batch")
DEFAULT_PRODUCTS = ("BTC-USD", "ETH-USD")
SIZE_DEC = 8
Msg = dict[str, Any]


class Product:
    def __init__(self, pid: str, mid: int, dec: int, rng: random.Random) -> None:
        self.id, self.mid, self.dec, self.rng = pid, mid, dec, rng
        self.sequence = rng.randint(10**8, 9 * 10**8)
        self.trade_id = rng.randint(10**6, 9 * 10**6)
        self.bids = {mid - k: self._size() for k in range(1, 21)}
        self.asks = {mid + k: self._size() for k in range(1, 21)}
        self.last: Msg | None = None  # last match, for `last_match`
        self.volume = 0

    def _size(self) -> int:
        return self.rng.randint(1, 10**4) * 10**5

    def px(self, p: int) -> str:
        return fmt_fixed(p, self.dec)

    def l2_change(self, ts: int, skip: bool) -> Msg:
        self.sequence += self.rng.randint(1, 3) + (1000 if skip else 0)
        side = self.rng.choice(("buy", "sell"))
        book = self.bids if side == "buy" else self.asks
        price = self.mid + (-1 if side == "buy" else 1) * self.rng.randint(1, 20)
        size = 0 if price in book and len(book) > 5 and self.rng.random() < 0.2 else self._size()
        if size:
            book[price] = size
        else:
            book.pop(price, None)
        change = [side, self.px(price), fmt_fixed(size, SIZE_DEC)]
        return {"type": "l2update", "product_id": self.id, "changes": [change], "time": iso_us(ts)}

    def match(self, ts: int, skip: bool) -> list[Msg]:
        """A match at the best opposite level (`side` = maker side) and its ticker (`side` = taker side)."""
        self.sequence += 1 + (1000 if skip else 0)
        self.trade_id += 1 + (5 if skip else 0)
        maker = self.rng.choice(("buy", "sell"))
        book = self.bids if maker == "buy" else self.asks
        price = max(book) if maker == "buy" else min(book)
        size = min(book[price], self.rng.randint(1, 10**3) * 10**5)
        self.volume += size
        m = {
            "type": "match",
            "trade_id": self.trade_id,
            "maker_order_id": str(uuid.UUID(int=self.rng.getrandbits(128))),
            "taker_order_id": str(uuid.UUID(int=self.rng.getrandbits(128))),
            "side": maker,
            "size": fmt_trim(size, SIZE_DEC),
            "price": fmt_trim(price, self.dec),
            "product_id": self.id,
            "sequence": self.sequence,
            "time": iso_us(ts),
        }
        self.last = m
        bb, ba = max(self.bids), min(self.asks)
        tick = {
            "type": "ticker",
            "sequence": self.sequence,
            "product_id": self.id,
            "price": m["price"],
            "open_24h": self.px(self.mid),
            "volume_24h": fmt_fixed(self.volume, SIZE_DEC),
            "low_24h": self.px(bb),
            "high_24h": self.px(ba),
            "volume_30d": fmt_fixed(self.volume, SIZE_DEC),
            "best_bid": self.px(bb),
            "best_ask": self.px(ba),
            "side": "sell" if maker == "buy" else "buy",
            "time": m["time"],
            "trade_id": self.trade_id,
            "last_size": m["size"],
        }
        return [m, tick]

    def snapshot(self) -> Msg:
        return {
            "type": "snapshot",
            "product_id": self.id,
            "bids": [
                [self.px(p), fmt_fixed(s, SIZE_DEC)] for p, s in sorted(self.bids.items(), reverse=True)
            ],
            "asks": [[self.px(p), fmt_fixed(s, SIZE_DEC)] for p, s in sorted(self.asks.items())],
        }

    def heartbeat(self, ts: int) -> Msg:
        return {
            "type": "heartbeat",
            "last_trade_id": self.trade_id,
            "product_id": self.id,
            "sequence": self.sequence,
            "time": iso_us(ts),
        }

    def info(self) -> Msg:
        base, quote = self.id.split("-", 1)
        return {
            "id": self.id,
            "base_currency": base,
            "quote_currency": quote,
            "base_min_size": "0.00001",
            "base_max_size": "10000",
            "quote_increment": fmt_fixed(1, self.dec),
            "base_increment": "0.00000001",
            "display_name": f"{base}/{quote}",
            "status": "online",
            "trading_disabled": False,
        }


class CoinbaseSimulator(ReplayMarketSim):
    name = "coinbase"
    default_rate = 50.0

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        symbols: Iterable[str] = DEFAULT_PRODUCTS,
        heartbeat_interval: float = 1.0,
        **kw: Any,  # mode, rate, seed, recording, speed, loop: see ReplayMarketSim
    ) -> None:
        super().__init__(host, port, **kw)
        self.heartbeat_interval = heartbeat_interval
        self.products = {p: Product(p, self.rng.randint(10**5, 10**7), 2, self.rng) for p in symbols}

    def accepts(self, path: str) -> bool:
        return path.split("?")[0] in ("/", "")

    async def handle(self, conn: Conn) -> None:
        conn.state["subs"] = {c: [] for c in CHANNELS}
        task: asyncio.Task[None] | None = None
        try:
            async for raw in conn.ws:
                try:
                    msg = json.loads(raw)
                except ValueError as exc:
                    await self._send(conn, _error("Malformed JSON", str(exc)))
                    continue
                if self.mode == "replay" and isinstance(msg, dict) and msg.get("type") == "subscribe":
                    if task is None:
                        task = asyncio.create_task(
                            replay(self, conn, self.recording.frames, speed=self.speed, loop=self.loop_replay)
                        )
                    continue
                for out in self.control(conn, msg):
                    await self._send(conn, out)
        finally:
            if task is not None:
                task.cancel()

    def control(self, conn: Conn, msg: Any) -> list[Msg]:
        """Apply a subscribe/unsubscribe request; the answers to send (first snapshots / last_match)."""
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind not in ("subscribe", "unsubscribe"):
            return [_error("Failed to subscribe", "Type has to be either subscribe or unsubscribe")]
        if self.fault_active("reject_auth", conn) is not None:
            return [_error("Authentication Failed", "authentication failure")]
        top = msg.get("product_ids") or []
        wanted: list[tuple[str, list[str]]] = []
        for ch in msg.get("channels") or []:
            name, pids = (ch, top) if isinstance(ch, str) else (ch.get("name"), ch.get("product_ids") or top)
            if name not in CHANNELS:
                return [_error("Failed to subscribe", f"{name} is not a valid channel")]
            if bad := [p for p in pids if p not in self.products]:
                return [_error("Failed to subscribe", f"{bad[0]} is not a valid product")]
            wanted.append((name, list(pids)))
        if not wanted:
            return [_error("Failed to subscribe", "No channels provided")]
        subs: dict[str, list[str]] = conn.state["subs"]
        first: list[Msg] = []
        for name, pids in wanted:
            if kind == "unsubscribe":
                subs[name] = [p for p in subs[name] if p not in pids]
                continue
            for p in pids:
                if p in subs[name]:
                    continue
                subs[name].append(p)
                if name.startswith("level2"):
                    first.append(self.products[p].snapshot())
                last = self.products[p].last
                if name == "matches" and last is not None:
                    first.append({**last, "type": "last_match"})
        conn.subscriptions = {f"{c}:{p}" for c, ps in subs.items() for p in ps}
        channels = [{"name": c, "product_ids": ps} for c, ps in subs.items() if ps]
        return [{"type": "subscriptions", "channels": channels}, *first]

    async def _send(self, conn: Conn, msg: Msg) -> None:
        await self.send(conn, orjson.dumps(msg))

    def fault_frame(self, conn: Conn, kind: str, size: int) -> bytes:
        if kind == "malformed":
            return b'{"type":"match","trade_id":'
        return orjson.dumps({"type": "error", "message": "oversize", "reason": "x" * max(1, size)})

    async def broadcast(self, msgs: list[Msg]) -> None:
        for m in msgs:
            ch = {"l2update": "level2", "match": "matches", "ticker": "ticker", "heartbeat": "heartbeat"}[
                m["type"]
            ]
            body = orjson.dumps(m)
            for conn in self.active():
                if f"{ch}:{m['product_id']}" in conn.subscriptions or (
                    ch == "level2" and f"level2_batch:{m['product_id']}" in conn.subscriptions
                ):
                    await self.send(conn, body)

    async def background(self) -> None:
        if self.mode != "generate" or not self.products:
            return
        beats = asyncio.create_task(self._heartbeats())
        try:
            if self.rate <= 0:
                await asyncio.Event().wait()
            products = list(self.products.values())
            async for due in paced(self.rate):
                out: list[Msg] = []
                for _ in range(due):
                    p, ts = self.rng.choice(products), now_ns()
                    # skip_seq lands on the next match: level2 carries no sequence to jump
                    trade = self.rng.random() < 0.2
                    out += p.match(ts, self.take_skip()) if trade else [p.l2_change(ts, False)]
                await self.broadcast(out)
        finally:
            beats.cancel()

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            await self.broadcast([p.heartbeat(now_ns()) for p in self.products.values()])

    def rest(self, method: str, path: str, query: dict[str, str]) -> RestAnswer | None:
        if path == "/products":
            for url, body in self.recording.rest.items():
                if url.endswith("/products"):
                    return 200, body, "application/json"
            return json_answer([p.info() for p in self.products.values()])
        return None


def _error(message: str, reason: str) -> Msg:
    return {"type": "error", "message": message, "reason": reason}


RECORDED_FILES = ("cryptofeed-COINBASE.ws.28.0", "cryptofeed-COINBASE.0")  # ws session + its REST answers


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_replay_arguments(p)


def build(args: argparse.Namespace, common: dict[str, Any]) -> CoinbaseSimulator:
    return CoinbaseSimulator(args.host, args.port, **(common | replay_kwargs(args, RECORDED_FILES)))
