"""The bridge batch loop without servers: decode, DLQ of the undecodable, retry-until-written."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from tickwire.bridges.config import RedisBridgeSettings
from tickwire.bridges.runtime import BridgeLoop, Item, backoff, dlq_headers
from tickwire.contract.codec import Codec
from tickwire.contract.exact import parse_units as u
from tickwire.contract.records import Trade


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


@dataclass
class Rec:
    """The attributes of a faust Message (``event.message``) the loop reads."""

    value: Any
    offset: int
    topic: str = "stock_trades_realtime"
    partition: int = 0
    key: bytes = b"AAPL"
    timestamp: float = 1_700_000_000.25  # seconds, as faust gives it
    headers: Any = ()


class ListDlq:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, Any, dict[str, bytes]]] = []

    async def send(self, topic: str, key: Any, value: Any, headers: list[Any]) -> Any:
        self.sent.append((topic, key, value, dict(headers)))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def test_loop_retries_a_failing_batch_until_written() -> None:
    s = RedisBridgeSettings(topics=("stock_trades_realtime",), retry_base_s=0.001, retry_max_s=0.002)
    writer = FlakyWriter(fail=2)
    loop = BridgeLoop(s, "redis", writer)
    codec = Codec()
    batch = [Rec(codec.encode(_trade(i)), offset=i) for i in range(10)]
    asyncio.run(loop.process(batch))
    assert [it.record.seq for it in writer.written] == list(range(10))
    assert [it.offset for it in writer.written] == list(range(10))
    assert writer.written[0].timestamp == 1_700_000_000.25
    assert writer.resets == 2 and writer.attempts == 3
    assert loop.written == 10 and loop.last_error == "ConnectionError: target down"


def test_undecodable_records_go_to_the_dlq_and_the_rest_is_written() -> None:
    s = RedisBridgeSettings(topics=("stock_trades_realtime",), topic_prefix="p.")
    writer = FlakyWriter(fail=0)
    loop = BridgeLoop(s, "redis", writer)
    dlq = ListDlq()
    loop.dlq = dlq
    good = Codec().encode(_trade(1))
    batch = [Rec(good[:-3], offset=5), Rec(good, offset=6), Rec(b"\x00\x00\x00\x00\x63abc", offset=7)]
    asyncio.run(loop.process(batch))
    assert [it.offset for it in writer.written] == [6]
    assert [(t, v) for t, _, v, _ in dlq.sent] == [
        ("p.bridge.redis.dlq", good[:-3]),
        ("p.bridge.redis.dlq", batch[2].value),
    ]
    assert [h["tw-src-offset"] for *_, h in dlq.sent] == [b"5", b"7"]
    assert all(h["tw-error-class"] == b"CodecError" for *_, h in dlq.sent)


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


def test_faust_agent_writes_batches_then_acks() -> None:
    from tickwire.bridges.runtime import attach, make_app

    s = RedisBridgeSettings(
        topics=("stock_trades_realtime",), retry_base_s=0.001, retry_max_s=0.002, batch_within_ms=1.0
    )
    app = make_app(s)
    writer = FlakyWriter(fail=1)
    loop = BridgeLoop(s, "redis", writer)
    attach(app, loop)
    (agent,) = app.agents.values()
    codec = Codec()
    acked: list[bool] = []

    async def go() -> None:
        async with agent.test_context() as ctx:
            events = [
                await ctx.put(key=b"AAPL", value=codec.encode(_trade(i)), wait=False) for i in range(10)
            ]
            for _ in range(500):
                if len(writer.written) == 10:
                    break
                await asyncio.sleep(0.01)
            acked.extend(ev.message.acked for ev in events)

    asyncio.run(go())
    assert [it.record.seq for it in writer.written] == list(range(10))
    assert writer.resets == 1 and writer.attempts >= 2
    assert acked == [True] * 10
