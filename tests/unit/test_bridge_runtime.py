"""The bridge agent loop in faust's in-memory test context: batching, decode, retry-until-written."""

from __future__ import annotations

import asyncio
from typing import Any

from normalize.avro import Codec
from normalize.exact import parse_units as u
from normalize.records import Trade
from tickwire.bridges.config import RedisBridgeSettings
from tickwire.bridges.runtime import BridgeLoop, Item, backoff, dlq_headers, make_app


class FlakyWriter:
    """Fails its first ``fail`` writes (as Redis/NATS down would), then records what it was given."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.attempts = 0
        self.resets = 0
        self.written: list[Item] = []

    async def start(self) -> None:
        return None

    async def write(self, items: list[Item]) -> int:
        self.attempts += 1
        if self.attempts <= self.fail:
            raise ConnectionError("target down")
        self.written.extend(items)
        return len(items)

    async def reset(self) -> None:
        self.resets += 1

    async def stop(self) -> None:
        return None


def _trade(i: int) -> Trade:
    return Trade(
        symbol="AAPL",
        asset_class="equity",
        source="alpaca",
        stream="s",
        session=1,
        seq=i,
        ts_event=i,
        ts_recv=i,
        price=u("1.5") + i,
        size=u("1"),
    )


def test_agent_retries_a_failing_batch_until_written() -> None:
    s = RedisBridgeSettings(
        topics=("stock_trades_realtime",), retry_base_s=0.001, retry_max_s=0.002, batch_within_ms=1.0
    )
    app = make_app(s)
    writer = FlakyWriter(fail=2)
    loop = BridgeLoop(app, s, "redis", writer)
    agent = app.agent(loop.source, name="t", concurrency=1)(loop._agent)
    codec = Codec()

    async def go() -> None:
        async with agent.test_context() as ctx:
            for i in range(10):
                await ctx.put(key=b"AAPL", value=codec.encode(_trade(i)), wait=False)
            for _ in range(500):
                if len(writer.written) == 10:
                    break
                await asyncio.sleep(0.01)

    asyncio.run(go())
    assert [it.record.seq for it in writer.written] == list(range(10))
    assert writer.resets == 2 and writer.attempts >= 3
    assert loop.written == 10 and loop.last_error == "ConnectionError: target down"


def test_backoff_is_capped_and_jittered() -> None:
    for attempt in range(50):
        d = backoff(attempt, 0.2, 5.0)
        assert 0.1 <= d <= 5.0
    assert backoff(40, 0.2, 5.0) >= 2.5


def test_dlq_headers_keep_originals_and_add_reason() -> None:
    class Msg:
        headers: Any = [("tw-source", b"alpaca")]
        topic, partition, offset = "stock_trades_realtime", 3, 42

    h = dict(dlq_headers(Msg(), ValueError("bad schema id 99")))
    assert h == {
        "tw-source": b"alpaca",
        "tw-error-class": b"ValueError",
        "tw-error-message": b"bad schema id 99",
        "tw-src-topic": b"stock_trades_realtime",
        "tw-src-partition": b"3",
        "tw-src-offset": b"42",
    }
