"""The Redis writer's identity idempotence against a real Redis (no Kafka): the live-path cases."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from tests.helpers import unique_name
from tests.integration.test_bridge_helpers import trade
from tickwire.bridges import shapes
from tickwire.bridges.batch import Item
from tickwire.bridges.config import RedisBridgeSettings
from tickwire.bridges.redis_bridge import ConcurrentWrite, RedisWriter

pytestmark = pytest.mark.integration

TOPIC = "stock_trades_realtime"


def items(records: list[Any], first_offset: int) -> list[Item]:
    return [Item(r, TOPIC, 0, first_offset + i, 0.0) for i, r in enumerate(records)]


def settings(redis_url: str, kp: str, **kw: Any) -> RedisBridgeSettings:
    return RedisBridgeSettings(redis_url=redis_url, key_prefix=kp, **kw)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def write(s: RedisBridgeSettings, batches: list[list[Item]]) -> list[int]:
    w = RedisWriter(s)
    try:
        return [await w.write(b) for b in batches]
    finally:
        await w.stop()


def published(ps: Any) -> list[bytes]:
    out = []
    m = ps.get_message(ignore_subscribe_messages=True, timeout=0.5)
    while m is not None:
        out.append(m["data"])
        m = ps.get_message(ignore_subscribe_messages=True, timeout=0.2)
    return out


def test_aborted_copy_then_committed_copy_is_written_once(redis_url: str) -> None:
    kp = unique_name("idem") + ":"
    r: Any = redis.Redis.from_url(redis_url)
    ps = r.pubsub()
    ps.subscribe(f"{kp}market_trades:AAPL")
    ps.get_message(timeout=1)
    recs = [trade(i) for i in range(5)]
    # Offsets 0-2: a transaction later aborted; 3-7: the normalizer re-produced all five, committed.
    n = run(write(settings(redis_url, kp), [items(recs[:3], 0), items(recs, 3)]))
    assert n == [3, 2]
    assert published(ps) == [shapes.trade_message(t) for t in recs]
    assert r.lrange(f"{kp}market:AAPL:trades", 0, -1) == [shapes.trade_list_entry(t) for t in reversed(recs)]
    ps.close()


def test_lower_seq_from_another_raw_partition_is_not_a_duplicate(redis_url: str) -> None:
    kp = unique_name("idem") + ":"
    r: Any = redis.Redis.from_url(redis_url)
    # seq 10 (symbol-keyed raw partition) is bridged before seq 7 (a stream-keyed frame, other partition).
    late, early = trade(9), trade(6)
    assert run(write(settings(redis_url, kp), [items([late], 0), items([early], 1)])) == [1, 1]
    assert r.llen(f"{kp}market:AAPL:trades") == 2


def test_a_restarted_bridge_remembers_identities(redis_url: str) -> None:
    kp = unique_name("idem") + ":"
    s = settings(redis_url, kp)
    recs = [trade(i) for i in range(4)]
    assert run(write(s, [items(recs, 0)])) == [4]
    # A new process (empty caches): the re-produced copies at new offsets are skipped, a new one is not.
    assert run(write(s, [items([*recs, trade(4)], 4)])) == [1]
    assert redis.Redis.from_url(redis_url).llen(f"{kp}market:AAPL:trades") == 5


def test_a_concurrent_instance_makes_the_batch_fail_before_any_write(redis_url: str) -> None:
    kp = unique_name("idem") + ":"
    r: Any = redis.Redis.from_url(redis_url)
    s = settings(redis_url, kp)

    async def scenario() -> tuple[int, int]:
        a, b = RedisWriter(s), RedisWriter(s)
        try:
            assert await a.write(items([trade(0)], 0)) == 1  # a's caches now hold the key's window
            assert await b.write(items([trade(1)], 1)) == 1  # b (e.g. the new owner) advances it
            with pytest.raises(ConcurrentWrite):
                await a.write(items([trade(1), trade(2)], 1))  # a's cache is stale: nothing written
            assert r.llen(f"{kp}market:AAPL:trades") == 2
            await a.reset()  # what the sink loop does after a failure: re-read, recompute, retry
            return await a.write(items([trade(1), trade(2)], 1)), int(r.llen(f"{kp}market:AAPL:trades"))
        finally:
            await a.stop()
            await b.stop()

    assert run(scenario()) == (1, 3)


def test_the_identity_window_is_bounded(redis_url: str) -> None:
    kp = unique_name("idem") + ":"
    r: Any = redis.Redis.from_url(redis_url)
    s = settings(redis_url, kp, dedupe_window=100)
    batches = [items([trade(i) for i in range(j * 50, (j + 1) * 50)], j * 50) for j in range(10)]
    assert run(write(s, batches)) == [50] * 10
    (chunks_key,) = r.keys(f"{kp}tickwire:bridge:*:seen:*")
    assert r.llen(chunks_key) == 2  # the newest 100 identities, in two chunks
    # Beyond the window an identity is forgotten (a copy that late would be written again) ...
    assert run(write(s, [items([trade(0)], 1000)])) == [1]
    # ... inside it, it is not.
    assert run(write(s, [items([trade(499)], 1001)])) == [0]
