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

Idempotence (exactly-once effect in Redis, also for records of transactions the normalizer later aborts):
``redis_idem`` -- per-partition offset watermarks plus per-key windows of record identities, checked and
advanced with the batch's writes in ONE Lua script guarded by per-key versions (compare-and-set). After
any failure all in-memory caches (watermarks, windows, tickers, books, bar heads) are dropped and
re-read from Redis. To rebuild Redis by re-consuming old offsets, delete the ``tickwire:bridge:{app_id}:*``
keys first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import defaultdict
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from tickwire.bridges import redis_analytics, redis_status, redis_venues, shapes
from tickwire.bridges import redis_idem as idem
from tickwire.bridges.batch import BridgeLoop, Item, PermanentWriteError
from tickwire.bridges.config import RedisBridgeSettings
from tickwire.bridges.redis_keys import Keys, bound_caches, check_reads, permanent_reason, wrong_type
from tickwire.contract.records import Bar, BookUpdate, Quote, Trade
from tickwire.logs import kv
from tickwire.runtime.sink import SinkWorker

log = logging.getLogger(__name__)


def connect(url: str) -> aioredis.Redis:
    # Bounded socket timeouts: a dead server must surface as an error (and a retry), not a hang.
    return aioredis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=3.0)


class ConcurrentWrite(RuntimeError):
    """Another bridge instance advanced a key this batch touches: caches were stale (retried)."""


class RedisWriter:
    def __init__(self, s: RedisBridgeSettings, client: aioredis.Redis | None = None) -> None:
        self.s = s
        self.r = client or connect(s.redis_url.get_secret_value())
        self.k = Keys(s.key_prefix, s.full_app_id)
        self.d = s.timestamp_digits
        self.script = self.r.register_script(idem.SCRIPT)
        self.wm: dict[tuple[str, int], int] = {}
        self.windows: dict[str, idem.Window] = {}
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
        self.windows.clear()
        self.tickers.clear()
        self.books.clear()
        self.bar_heads.clear()

    @staticmethod
    def _field(topic: str, partition: int) -> str:
        return f"{topic}:{partition}"

    async def _load(self, items: list[Item], keys: list[str]) -> None:
        """Fill the caches this batch needs from Redis (one round trip)."""
        tps = sorted({(i.topic, i.partition) for i in items} - self.wm.keys())
        wkeys = sorted(set(keys) - self.windows.keys())
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
        if not (tps or wkeys or tick_syms or book_syms or bar_keys):
            return
        pipe = self.r.pipeline(transaction=False)
        if tps:
            pipe.hmget(self.k.offsets, [self._field(t, p) for t, p in tps])
        if wkeys:
            pipe.hmget(self.k.versions, wkeys)
        for wk in wkeys:
            pipe.lrange(self.k.seen(wk), 0, -1)
        for sym in tick_syms:
            pipe.get(self.k.ticker(sym))
        for sym in book_syms:
            pipe.hgetall(self.k.book_state(sym, "bids"))
            pipe.hgetall(self.k.book_state(sym, "asks"))
        for key in bar_keys:
            pipe.lindex(key, 0)
        # Per-command results: a legacy key of the wrong type fails its read alone (escalated, see batch).
        res = list(await pipe.execute(raise_on_error=False))
        check_reads(self.k, items, res, tps, wkeys, tick_syms, book_syms, bar_keys)
        if tps:
            for tp, v in zip(tps, res.pop(0), strict=True):
                self.wm[tp] = int(v) if v is not None else -1
        if wkeys:
            versions = res.pop(0)
            for wk, ver in zip(wkeys, versions, strict=True):
                self.windows[wk] = idem.Window(ver.decode() if ver else "", res.pop(0), self.s.dedupe_window)
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

    def _fresh(self, items: list[Item], keys: list[str]) -> tuple[list[Item], dict[str, list[int]]]:
        """Records not written before (offset above the watermark AND identity not in its window)."""
        fresh: list[Item] = []
        new: dict[str, list[int]] = defaultdict(list)
        wm, windows = self.wm, self.windows
        for it, wk in zip(items, keys, strict=True):
            if it.offset <= wm[(it.topic, it.partition)]:
                continue
            rec = it.record
            i = (rec.seq << 32) | rec.sub_seq  # idem.ident, inlined (per record)
            seen = windows[wk].seen
            if i in seen:
                continue  # an aborted copy was written already (or a duplicate within the batch)
            seen.add(i)
            new[wk].append(i)
            fresh.append(it)
        return fresh, new

    async def write(self, items: list[Item]) -> int:
        window_key = idem.window_key
        keys = [window_key(i.record) for i in items]
        await self._load(items, keys)
        fresh, new = self._fresh(items, keys)
        offsets: dict[str, int] = {}
        for it in items:  # skipped records advance the watermark too: they are done
            f = self._field(it.topic, it.partition)
            offsets[f] = max(offsets.get(f, -1), it.offset)
        k, s, d = self.k, self.s, self.d
        sc = idem.Script(k.versions)
        for wk, ids in new.items():
            w = self.windows[wk]
            blob, drop = w.add_chunk(ids)
            version = str(int(w.version or "0") + 1)
            sc.check(wk, w.version, version)
            w.version = version
            sc.cmd("RPUSH", k.seen(wk), blob)
            if drop:
                sc.cmd("LTRIM", k.seen(wk), drop, -1)
            sc.cmd("EXPIRE", k.seen(wk), s.ttl_state_s)
        if new:
            sc.cmd("EXPIRE", k.versions, s.ttl_state_s)
        trades: dict[str, list[bytes]] = defaultdict(list)
        bar_keys: set[str] = set()
        dirty_tickers: set[str] = set()
        book_rewrite: set[str] = set()
        book_changes: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
        trades_channel, trade_payloads = k.trades_channel, shapes.trade_payloads
        for it in fresh:
            rec = it.record
            sym = rec.symbol
            if isinstance(rec, Trade):
                message, entry = trade_payloads(rec, d)
                sc.cmd("PUBLISH", trades_channel(sym), message)
                trades[sym].append(entry)
                if self.tickers[sym].apply_trade(rec.price, rec.size, rec.ts_event):
                    dirty_tickers.add(sym)
            elif isinstance(rec, Quote):
                if redis_venues.quote_moves_ticker(self.tickers[sym], rec):
                    dirty_tickers.add(sym)
            elif isinstance(rec, Bar):
                payload = shapes.bar_message(rec, d)
                if rec.timeframe == "1m":
                    sc.cmd("PUBLISH", k.bars_channel(sym), payload)
                key = k.bars(sym, rec.timeframe)
                ts = shapes.iso_from_ns(rec.ts_event, d)
                if self.bar_heads.get(key) == ts:
                    sc.cmd("LPOP", key)  # a corrected bar replaces the one with the same open time
                sc.cmd("LPUSH", key, payload)
                self.bar_heads[key] = ts
                bar_keys.add(key)
            elif not await redis_analytics.write(self.r, sc, s, rec) and isinstance(rec, BookUpdate):
                self._apply_book(rec, book_rewrite, book_changes, dirty_tickers)
        for sym, entries in trades.items():
            key = k.trades(sym)
            sc.cmd_many("LPUSH", key, entries)
            sc.cmd("LTRIM", key, 0, s.trades_max - 1)
            sc.cmd("EXPIRE", key, s.ttl_trades_s)
        for key in bar_keys:
            sc.cmd("LTRIM", key, 0, s.bars_max - 1)
            sc.cmd("EXPIRE", key, s.ttl_bars_s)
        for sym in dirty_tickers:
            sc.cmd("SET", k.ticker(sym), self.tickers[sym].to_json(d), "EX", s.ttl_ticker_s)
        for sym in book_rewrite | book_changes.keys():
            self._write_book(sc, sym, sym in book_rewrite, book_changes.get(sym))
        if offsets:
            # Strings: Lua numbers are doubles (offsets stay exact as text).
            sc.cmd_many("HSET", k.offsets, [v for f, o in offsets.items() for v in (f, str(o))])
            sc.cmd("EXPIRE", k.offsets, s.ttl_state_s)
        try:
            done = await self.script(args=sc.argv())
        except ResponseError as exc:
            reason = permanent_reason(exc)
            if reason is None:
                raise
            # Refused before the first write (see redis_idem.SCRIPT): nothing of the batch was applied.
            raise PermanentWriteError(reason, f"{reason.upper()}: {exc}", items, ("*",)) from exc
        if isinstance(done, list):  # keys of the wrong type, found before any write
            flat = iter(done)
            bad = {bytes(key).decode(): bytes(t).decode() for key, t in zip(flat, flat, strict=True)}
            raise wrong_type(k, items, bad, "write")
        if done != 1:
            raise ConcurrentWrite("identity window changed under us (another bridge instance wrote)")
        for f, off in offsets.items():
            topic, _, part = f.rpartition(":")
            self.wm[(topic, int(part))] = off
        now = time.time()
        for it in fresh:  # market data only: polled analytics (chains, news) are minutes apart by design
            if not isinstance(it.record, redis_analytics.ANALYTICS):
                self.last_update[it.record.symbol] = now
        bound_caches(
            self.s.cache_max_symbols,
            windows=self.windows, tickers=self.tickers, books=self.books, bar_heads=self.bar_heads,
            last_update=self.last_update,
        )  # fmt: skip
        return len(fresh)

    def _apply_book(
        self,
        u: BookUpdate,
        rewrite: set[str],
        changes: dict[str, tuple[dict[int, int], dict[int, int]]],
        dirty_tickers: set[str],
    ) -> None:
        sym = redis_venues.book_key(u)  # per-venue books: "SYMBOL:VENUE" (market:{symbol}:{venue}:book)
        book = self.books.setdefault(sym, shapes.Book())
        bids, asks = book.apply(u)
        if u.snapshot:
            rewrite.add(sym)
            changes.pop(sym, None)
        elif sym not in rewrite:
            cb, ca = changes.setdefault(sym, ({}, {}))
            cb.update(bids)
            ca.update(asks)
        if book.bids and book.asks and sym == u.symbol:  # a per-venue book never moves the ticker (NBBO does)
            bp = max(book.bids)
            ap = min(book.asks)
            if self.tickers[sym].apply_quote(bp, book.bids[bp], ap, book.asks[ap], u.ts_event):
                dirty_tickers.add(sym)

    def _write_book(
        self,
        sc: idem.Script,
        sym: str,
        rewrite: bool,
        change: tuple[dict[int, int], dict[int, int]] | None,
    ) -> None:
        k, s = self.k, self.s
        book = self.books[sym]
        bids, asks = book.top(s.book_depth)
        payload = redis_venues.book_json(sym, bids, asks, book.ts_event, self.d)
        sc.cmd("SET", k.book(sym), payload, "EX", s.ttl_book_s)
        for side, levels, idx in (("bids", book.bids, 0), ("asks", book.asks, 1)):
            key = k.book_state(sym, side)
            if rewrite:
                sc.cmd("DEL", key)
                if levels:
                    sc.cmd_many("HSET", key, [v for p, q in levels.items() for v in (str(p), str(q))])
            elif change is not None:
                upd = [v for p, q in change[idx].items() if q > 0 for v in (str(p), str(q))]
                rem = [str(p) for p, q in change[idx].items() if q <= 0]
                if upd:
                    sc.cmd_many("HSET", key, upd)
                if rem:
                    sc.cmd_many("HDEL", key, rem)
            sc.cmd("EXPIRE", key, s.ttl_state_s)

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


def build(s: RedisBridgeSettings) -> SinkWorker:
    """The Redis bridge: sink loop + writer, a heartbeat/staleness task and the legacy control plane."""
    writer = RedisWriter(s)
    loop = BridgeLoop(s, "redis", writer)
    instance = instance_id()
    tasks: list[asyncio.Task[None]] = []

    async def _monitor() -> None:
        while True:
            await asyncio.sleep(s.monitor_interval_s)
            last = shapes.iso_from_ns(int(loop.last_write_wall * 1e9), 3) if loop.batches else None
            status = {
                "component": s.full_app_id,
                "instance": instance,
                "status": "retrying" if loop.failing else "ok",
                "batches": loop.batches,
                "records_written": loop.written,
                "last_write": last,
                "last_error": loop.last_error,
            }
            try:
                await writer.monitor(status)
            except Exception as exc:  # Redis down: the batch retries report it; try again next tick
                log.debug("redis monitor failed %s", kv(error=exc))

    async def _start() -> None:
        await loop.start()
        tasks.append(asyncio.create_task(_monitor()))
        tasks.append(asyncio.create_task(redis_status.StatusKeys(s, writer.r).run()))  # vendor status keys
        if s.control_plane:
            from tickwire.bridges.control_plane import ControlPlane

            tasks.append(asyncio.create_task(ControlPlane(s).run()))

    async def _stop() -> None:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await loop.close()

    # On (re)assignment another instance may have written our new partitions' symbols: re-read them.
    return SinkWorker(loop.sink_config(), loop.handle, on_start=_start, on_stop=_stop, on_assign=writer.reset)
