"""Redis bridge: canonical records -> the legacy Redis surfaces of seeds 000 and 004.

Per batch, one ``MULTI``/``EXEC`` pipeline (one round trip) carries every write:

- ``PUBLISH market_trades:{symbol}`` (NormalizedTrade) per trade, ``PUBLISH market_data:{symbol}``
  (NormalizedBar) per 1-minute bar;
- ``market:{symbol}:trades``: list newest first, ``LPUSH`` + ``LTRIM`` to ``trades_max``;
- ``market:{symbol}:bars:{1min|5s|...}``: list newest first; a corrected bar replaces the head bar with
  the same open time instead of adding a second one;
- ``market:{symbol}:ticker``: JSON of the merged top of book (quotes, or the book's best levels) and last
  trade; each half only moves forward in event time;
- ``market:{symbol}:book``: JSON of the best ``book_depth`` levels per side. Snapshots replace the book,
  diffs are applied to a per-symbol book kept in memory and mirrored durably in two internal hashes
  (``tickwire:book:{symbol}:bids|asks``, price units -> size units) so a restarted bridge continues
  applying diffs without waiting for the next snapshot;
- every key gets its surface's TTL (see config.py).

Idempotence (exactly-once effect in Redis): the same transaction stores, per consumed topic-partition,
the highest Kafka offset it applied (hash ``tickwire:bridge:{app_id}:offsets``). Redelivered records
(offset <= watermark, e.g. after a crash before the Kafka commit, or a retried batch whose EXEC had in
fact gone through) are skipped. Offsets, not (ts_event, seq), because they are the one total order of
what was applied: event times legitimately go backwards (late trades, several sources per symbol) and
seq restarts with each producer session. MULTI/EXEC makes the data and its watermark atomic; after any
failure all in-memory caches (watermarks, tickers, books, bar heads) are dropped and re-read from Redis.
Consequence: to rebuild Redis by re-consuming old offsets, delete the offsets hash first.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Awaitable
from typing import Any, cast

import faust
import orjson
import redis.asyncio as aioredis

from tickwire.bridges import shapes
from tickwire.bridges.config import RedisBridgeSettings
from tickwire.bridges.runtime import BridgeLoop, Item, attach, make_app
from tickwire.contract.records import Bar, BookUpdate, Quote, Trade
from tickwire.logs import kv

log = logging.getLogger(__name__)


# PUBLISH each (channel, message) pair of ARGV, in order; inside the batch's MULTI/EXEC like any command.
_PUBLISH_MANY = "for i = 1, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end return #ARGV / 2"
_PUBLISH_CHUNK = 2 * 4000  # pairs per script call: bounded argument lists (Lua's unpack/stack limits)


class Keys:
    """Every Redis key and channel name the bridge touches, with the isolation prefix."""

    def __init__(self, prefix: str, app_id: str) -> None:
        self.p = prefix
        self.offsets = f"{prefix}tickwire:bridge:{app_id}:offsets"
        self.stale = f"{prefix}monitoring:data:stale"

    def ticker(self, sym: str) -> str:
        return f"{self.p}market:{sym}:ticker"

    def trades(self, sym: str) -> str:
        return f"{self.p}market:{sym}:trades"

    def bars(self, sym: str, timeframe: str) -> str:
        return f"{self.p}market:{sym}:bars:{shapes.BAR_KEY_SUFFIX.get(timeframe, timeframe)}"

    def book(self, sym: str) -> str:
        return f"{self.p}market:{sym}:book"

    def book_state(self, sym: str, side: str) -> str:
        return f"{self.p}tickwire:book:{sym}:{side}"

    def trades_channel(self, sym: str) -> str:
        return f"{self.p}market_trades:{sym}"

    def bars_channel(self, sym: str) -> str:
        return f"{self.p}market_data:{sym}"

    def heartbeat(self, component: str) -> str:
        return f"{self.p}heartbeat:{component}"


def connect(url: str) -> aioredis.Redis:
    # Bounded socket timeouts: a dead server must surface as an error (and a retry), not a hang.
    return aioredis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=3.0)


class RedisWriter:
    def __init__(self, s: RedisBridgeSettings, client: aioredis.Redis | None = None) -> None:
        self.s = s
        self.r = client or connect(s.redis_url)
        self.k = Keys(s.key_prefix, s.full_app_id)
        self.d = s.timestamp_digits
        self.wm: dict[tuple[str, int], int] = {}
        self.tickers: dict[str, shapes.Ticker] = {}
        self.books: dict[str, shapes.Book] = {}
        self.bar_heads: dict[str, str] = {}  # bars key -> ISO open time of its head bar ("" = empty)
        self.last_update: dict[str, float] = {}  # symbol -> wall time of its last write (staleness)

    async def start(self) -> None:
        await self.r.ping()

    async def stop(self) -> None:
        await self.r.aclose()

    async def reset(self) -> None:
        self.wm.clear()
        self.tickers.clear()
        self.books.clear()
        self.bar_heads.clear()

    @staticmethod
    def _field(topic: str, partition: int) -> str:
        return f"{topic}:{partition}"

    async def _load(self, items: list[Item]) -> list[Item]:
        """Fill caches this batch needs from Redis (one round trip); return the not-yet-applied items."""
        tps = sorted({(i.topic, i.partition) for i in items} - self.wm.keys())
        tick_syms = sorted(
            {i.record.symbol for i in items if isinstance(i.record, Trade | Quote | BookUpdate)}
            - self.tickers.keys()
        )
        book_syms = sorted(
            {i.record.symbol for i in items if isinstance(i.record, BookUpdate) and not i.record.snapshot}
            - self.books.keys()
        )
        bar_keys = sorted(
            {self.k.bars(i.record.symbol, i.record.timeframe) for i in items if isinstance(i.record, Bar)}
            - self.bar_heads.keys()
        )
        if tps or tick_syms or book_syms or bar_keys:
            pipe = self.r.pipeline(transaction=False)
            if tps:
                pipe.hmget(self.k.offsets, [self._field(t, p) for t, p in tps])
            for sym in tick_syms:
                pipe.get(self.k.ticker(sym))
            for sym in book_syms:
                pipe.hgetall(self.k.book_state(sym, "bids"))
                pipe.hgetall(self.k.book_state(sym, "asks"))
            for key in bar_keys:
                pipe.lindex(key, 0)
            res = list(await pipe.execute())
            if tps:
                for tp, v in zip(tps, res.pop(0), strict=True):
                    self.wm[tp] = int(v) if v is not None else -1
            for sym in tick_syms:
                raw = res.pop(0)
                self.tickers[sym] = shapes.Ticker.from_json(sym, raw) if raw else shapes.Ticker(sym)
            for sym in book_syms:
                book = shapes.Book()
                book.bids = {int(p): int(q) for p, q in res.pop(0).items()}
                book.asks = {int(p): int(q) for p, q in res.pop(0).items()}
                self.books[sym] = book
            for key in bar_keys:
                head = res.pop(0)
                self.bar_heads[key] = orjson.loads(head).get("timestamp", "") if head else ""
        return [i for i in items if i.offset > self.wm[(i.topic, i.partition)]]

    async def write(self, items: list[Item]) -> int:
        fresh = await self._load(items)
        if not fresh:
            return 0
        k, s, d = self.k, self.s, self.d
        pipe = self.r.pipeline(transaction=True)
        trades: dict[str, list[bytes]] = defaultdict(list)
        bar_keys: set[str] = set()
        dirty_tickers: set[str] = set()
        book_rewrite: set[str] = set()
        book_changes: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
        offsets: dict[str, int] = {}
        # PUBLISH arguments (channel, message, ...) in record order, sent as one script call: one command
        # instead of one per trade (redis-py's per-command cost dominated the transaction).
        publish: list[str | bytes] = []
        trades_channel, trade_payloads = k.trades_channel, shapes.trade_payloads
        for it in fresh:
            rec = it.record
            sym = rec.symbol
            offsets[self._field(it.topic, it.partition)] = it.offset
            if isinstance(rec, Trade):
                message, entry = trade_payloads(rec, d)
                publish.append(trades_channel(sym))
                publish.append(message)
                trades[sym].append(entry)
                if self.tickers[sym].apply_trade(rec.price, rec.size, rec.ts_event):
                    dirty_tickers.add(sym)
            elif isinstance(rec, Quote):
                if self.tickers[sym].apply_quote(*shapes.ticker_from_quote(rec)):
                    dirty_tickers.add(sym)
            elif isinstance(rec, Bar):
                payload = shapes.bar_message(rec, d)
                if rec.timeframe == "1m":
                    publish.append(k.bars_channel(sym))
                    publish.append(payload)
                key = k.bars(sym, rec.timeframe)
                ts = shapes.iso_from_ns(rec.ts_event, d)
                if self.bar_heads.get(key) == ts:
                    pipe.lpop(key)  # a corrected bar replaces the one with the same open time
                pipe.lpush(key, payload)
                self.bar_heads[key] = ts
                bar_keys.add(key)
            else:
                self._apply_book(rec, book_rewrite, book_changes, dirty_tickers)
        for i in range(0, len(publish), _PUBLISH_CHUNK):
            pipe.eval(_PUBLISH_MANY, 0, *publish[i : i + _PUBLISH_CHUNK])
        for sym, entries in trades.items():
            key = k.trades(sym)
            pipe.lpush(key, *entries)
            pipe.ltrim(key, 0, s.trades_max - 1)
            pipe.expire(key, s.ttl_trades_s)
        for key in bar_keys:
            pipe.ltrim(key, 0, s.bars_max - 1)
            pipe.expire(key, s.ttl_bars_s)
        for sym in dirty_tickers:
            pipe.set(k.ticker(sym), self.tickers[sym].to_json(d), ex=s.ttl_ticker_s)
        for sym in book_rewrite | book_changes.keys():
            self._write_book(pipe, sym, sym in book_rewrite, book_changes.get(sym))
        pipe.hset(k.offsets, mapping=cast(Any, offsets))
        pipe.expire(k.offsets, s.ttl_state_s)
        await pipe.execute()
        for f, off in offsets.items():
            topic, _, part = f.rpartition(":")
            self.wm[(topic, int(part))] = off
        now = time.time()
        for it in fresh:
            self.last_update[it.record.symbol] = now
        return len(fresh)

    def _apply_book(
        self,
        u: BookUpdate,
        rewrite: set[str],
        changes: dict[str, tuple[dict[int, int], dict[int, int]]],
        dirty_tickers: set[str],
    ) -> None:
        sym = u.symbol
        book = self.books.setdefault(sym, shapes.Book())
        bids, asks = book.apply(u)
        if u.snapshot:
            rewrite.add(sym)
            changes.pop(sym, None)
        elif sym not in rewrite:
            cb, ca = changes.setdefault(sym, ({}, {}))
            cb.update(bids)
            ca.update(asks)
        if book.bids and book.asks:
            bp = max(book.bids)
            ap = min(book.asks)
            if self.tickers[sym].apply_quote(bp, book.bids[bp], ap, book.asks[ap], u.ts_event):
                dirty_tickers.add(sym)

    def _write_book(
        self, pipe: Any, sym: str, rewrite: bool, change: tuple[dict[int, int], dict[int, int]] | None
    ) -> None:
        k, s = self.k, self.s
        book = self.books[sym]
        bids, asks = book.top(s.book_depth)
        pipe.set(k.book(sym), shapes.book_json(sym, bids, asks, book.ts_event, self.d), ex=s.ttl_book_s)
        for side, levels, idx in (("bids", book.bids, 0), ("asks", book.asks, 1)):
            key = k.book_state(sym, side)
            if rewrite:
                pipe.delete(key)
                if levels:
                    pipe.hset(key, mapping={str(p): str(q) for p, q in levels.items()})
            elif change is not None:
                upd = {str(p): str(q) for p, q in change[idx].items() if q > 0}
                rem = [str(p) for p, q in change[idx].items() if q <= 0]
                if upd:
                    pipe.hset(key, mapping=upd)
                if rem:
                    pipe.hdel(key, *rem)
            pipe.expire(key, s.ttl_state_s)

    async def monitor(self, status: dict[str, Any]) -> None:
        """Heartbeat + ``monitoring:data:stale`` (symbols this instance wrote, silent for too long)."""
        now = time.time()
        stale: dict[str, bytes] = {}
        fresh: list[str] = []
        for sym, t in self.last_update.items():
            if now - t > self.s.stale_after_s:
                stale[sym] = orjson.dumps(
                    {
                        "last_update": shapes.iso_from_ns(int(t * 1e9), 3),
                        "age_seconds": round(now - t, 3),
                        "threshold_seconds": self.s.stale_after_s,
                    }
                )
            else:
                fresh.append(sym)
        pipe = self.r.pipeline(transaction=True)
        if stale:
            pipe.hset(self.k.stale, mapping=cast(Any, stale))
        if fresh:
            pipe.hdel(self.k.stale, *fresh)
        pipe.expire(self.k.stale, int(3 * self.s.monitor_interval_s + 30))
        hb = {"timestamp": shapes.iso_from_ns(time.time_ns(), 3), "ts_ns": time.time_ns(), **status}
        pipe.set(self.k.heartbeat(self.s.full_app_id), orjson.dumps(hb), ex=self.s.ttl_heartbeat_s)
        await pipe.execute()


def instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def build(s: RedisBridgeSettings) -> faust.App:
    """The faust app of the Redis bridge (agent, monitor timer, control plane task)."""
    app = make_app(s)
    writer = RedisWriter(s)
    loop = BridgeLoop(s, "redis", writer)
    attach(app, loop)
    instance = instance_id()

    async def _monitor() -> None:
        status = {
            "component": s.full_app_id,
            "instance": instance,
            "status": "retrying" if loop.last_error and not loop.started else "ok",
            "batches": loop.batches,
            "records_written": loop.written,
            "last_write": shapes.iso_from_ns(int(loop.last_write_wall * 1e9), 3) if loop.batches else None,
            "last_error": loop.last_error,
        }
        try:
            await writer.monitor(status)
        except Exception as exc:  # Redis down: the agent's retries report it; just try again next tick
            log.debug("redis monitor failed %s", kv(error=exc))

    app.timer(s.monitor_interval_s)(_monitor)

    def _on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> Awaitable[None]:
        # Another instance may have written our new partitions' symbols meanwhile: re-read from Redis.
        return writer.reset()

    app.on_partitions_assigned.connect(_on_assigned)
    if s.control_plane:
        from tickwire.bridges.control_plane import ControlPlane

        app.task(ControlPlane(s).run)
    return app
