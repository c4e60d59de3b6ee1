"""Bridge-side helpers of the broker-failover pipeline test in test_infra_cluster.py (no tests here): a
timestamped Redis subscriber, the pub/sub messages owed for committed records, and a JetStream reader.
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
import time
from datetime import datetime
from typing import Any

import nats
import redis

from tickwire.bridges import shapes
from tickwire.contract.records import Bar, Trade


class Subscriber(threading.Thread):
    """A legacy Redis consumer of the bridge's market_* channels: (arrival wall time, channel, payload)."""

    def __init__(self, url: str, pattern: str) -> None:
        super().__init__(daemon=True, name="redis-sub")
        client: Any = redis.Redis.from_url(url)
        self.ps = client.pubsub()
        self.ps.psubscribe(pattern)
        self.seen: list[tuple[float, str, bytes]] = []
        self.halt = False

    def run(self) -> None:
        while not self.halt:
            m = self.ps.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if m is not None and m["type"] == "pmessage":
                self.seen.append((time.time(), m["channel"].decode(), m["data"]))
        self.ps.close()

    def trades_after(self, wall: float) -> list[tuple[float, float]]:
        """(arrival, trade time) of the trades seen whose event time is after ``wall`` (epoch seconds)."""
        out = []
        for at, channel, data in list(self.seen):
            if ":market_trades:" in f":{channel}":
                ts = datetime.fromisoformat(json.loads(data)["timestamp"]).timestamp()
                if ts > wall:
                    out.append((at, ts))
        return out


def redis_expected(committed: list[Any], kp: str) -> collections.Counter[tuple[str, bytes]]:
    """The pub/sub messages the Redis bridge owes legacy consumers for these committed records."""
    return collections.Counter(
        (f"{kp}market_trades:{r.symbol}", shapes.trade_message(r))
        if isinstance(r, Trade)
        else (f"{kp}market_data:{r.symbol}", shapes.bar_message(r))
        for r in committed
        if isinstance(r, Trade) or (isinstance(r, Bar) and r.timeframe == "1m")
    )


async def _jetstream(url: str, stream: str, delete: bool) -> list[tuple[str, bytes]]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        n = (await js.stream_info(stream)).state.messages
        got: list[tuple[str, bytes]] = []
        if n:
            sub = await js.pull_subscribe(">", stream=stream)
            while len(got) < n:
                for m in await sub.fetch(min(1000, n - len(got)), timeout=5):
                    got.append(((m.headers or {}).get("Nats-Msg-Id", ""), m.data))
                    await m.ack()
        if delete:
            await js.delete_stream(stream)
        return got
    finally:
        await nc.close()


def jetstream_messages(url: str, stream: str, delete: bool = False) -> list[tuple[str, bytes]]:
    """(Nats-Msg-Id, payload) of every message in ``stream``."""
    return asyncio.run(_jetstream(url, stream, delete))


async def _count(url: str, stream: str) -> int:
    nc = await nats.connect(url)
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    finally:
        await nc.close()


def jetstream_count(url: str, stream: str) -> int:
    return asyncio.run(_count(url, stream))
