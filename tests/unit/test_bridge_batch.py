"""The bridge batch handler and the Redis identity window without servers; settings of both bridges."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tickwire.bridges import redis_idem as idem
from tickwire.bridges.batch import BridgeLoop, Item
from tickwire.bridges.config import NatsBridgeSettings, RedisBridgeSettings
from tickwire.contract.codec import Codec
from tickwire.contract.exact import parse_units as u
from tickwire.contract.records import Bar, Trade
from tickwire.settings import UnknownSettingError


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


def _trade(i: int, sub_seq: int = 0) -> Trade:
    return Trade(
        symbol="AAPL",
        asset_class="equity",
        source="alpaca",
        stream="s",
        session=1,
        seq=i,
        sub_seq=sub_seq,
        ts_event=i,
        ts_recv=i,
        price=u("1.5") + i,
        size=u("1"),
    )


class Msg:
    """The confluent_kafka.Message methods the handler reads."""

    def __init__(self, value: bytes | None, offset: int, headers: Any = None) -> None:
        self._value, self._offset, self._headers = value, offset, headers

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes:
        return b"AAPL"

    def topic(self) -> str:
        return "p.stock_trades_realtime"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_250)  # (type, ms)

    def headers(self) -> Any:
        return self._headers


class ListProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, Any, dict[str, bytes]]] = []

    def produce(self, topic: str, value: Any, key: Any, headers: list[tuple[str, bytes]]) -> None:
        self.sent.append((topic, key, value, dict(headers)))

    def flush(self, timeout: float) -> int:
        return 0


def test_a_failing_write_raises_resets_and_the_same_batch_then_succeeds() -> None:
    s = RedisBridgeSettings.load(topics=("stock_trades_realtime",))
    writer = FlakyWriter(fail=2)
    loop = BridgeLoop(s, "redis", writer)
    codec = Codec()
    batch: list[Any] = [Msg(codec.encode(_trade(i)), offset=i) for i in range(10)]
    for _ in range(2):
        with pytest.raises(ConnectionError):
            asyncio.run(loop.handle(batch))
        assert loop.failing and loop.last_error == "ConnectionError: target down"
    asyncio.run(loop.handle(batch))
    assert [it.record.seq for it in writer.written] == list(range(10))
    assert [it.offset for it in writer.written] == list(range(10))
    assert writer.written[0].timestamp == 1_700_000_000.25
    assert writer.written[0].topic == "p.stock_trades_realtime" and writer.written[0].partition == 2
    assert writer.resets == 2 and not loop.failing and loop.written == 10


def test_undecodable_records_go_to_the_dlq_once_with_reason_and_source() -> None:
    s = RedisBridgeSettings.load(topics=("stock_trades_realtime",), topic_prefix="p.")
    writer = FlakyWriter(fail=1)
    loop = BridgeLoop(s, "redis", writer)
    dlq = ListProducer()
    loop._dlq = dlq
    good = Codec().encode(_trade(1))
    bad1, bad2 = good[:-3], b"\x00\x00\x00\x00\x63abc"
    batch: list[Any] = [Msg(bad1, 5, [("tw-source", b"alpaca")]), Msg(good, 6), Msg(bad2, 7)]
    with pytest.raises(ConnectionError):
        asyncio.run(loop.handle(batch))  # DLQ done, write failed
    asyncio.run(loop.handle(batch))  # retried: the DLQ records are not sent twice
    assert [it.offset for it in writer.written] == [6]
    assert [(t, v) for t, _, v, _ in dlq.sent] == [("p.bridge.redis.dlq", bad1), ("p.bridge.redis.dlq", bad2)]
    assert dlq.sent[0][3] == {
        "tw-source": b"alpaca",
        "tw-error-class": b"CodecError",
        "tw-error-message": dlq.sent[0][3]["tw-error-message"],
        "tw-src-topic": b"p.stock_trades_realtime",
        "tw-src-partition": b"2",
        "tw-src-offset": b"5",
    }
    assert dlq.sent[0][3]["tw-error-message"] and dlq.sent[1][3]["tw-src-offset"] == b"7"


def test_window_keys_separate_types_sessions_and_bar_timeframes() -> None:
    t = _trade(1)
    bar = Bar(
        symbol="AAPL", asset_class="equity", source="alpaca", stream="s", session=1, seq=1,
        ts_event=0, ts_recv=0, timeframe="5s", open=1, high=1, low=1, close=1, volume=1,
    )  # fmt: skip
    assert idem.window_key(t) == "Trade|alpaca|s|1|AAPL"
    assert idem.window_key(bar) == "Bar:5s|alpaca|s|1|AAPL"
    assert idem.ident(_trade(7, 3)) != idem.ident(_trade(3, 7))


def test_window_round_trips_through_its_stored_chunks_and_trims_oldest_first() -> None:
    w = idem.Window("", [], limit=4)
    blobs = []
    for chunk in ([1, 2], [3, 4], [5, 6]):
        ids = [idem.ident(_trade(i, i % 2)) for i in chunk]
        w.seen.update(ids)
        blob, drop = w.add_chunk(ids)
        blobs.append(blob)
        assert drop == (1 if chunk == [5, 6] else 0)
    assert w.seen == {idem.ident(_trade(i, i % 2)) for i in (3, 4, 5, 6)}
    again = idem.Window("3", blobs[1:], limit=4)
    assert again.seen == w.seen and again.size == 4 and again.version == "3"


def test_script_arguments_are_checks_then_one_msgpack_command_list() -> None:
    import msgpack

    sc = idem.Script("v")
    sc.check("k1", "", "1")
    sc.cmd("PUBLISH", "ch", b"m")
    sc.cmd_many("LPUSH", "l", list(range(idem.MAX_ARGS + 2)))
    argv = sc.argv()
    assert argv[:5] == ["v", 1, "k1", "", "1"] and len(argv) == 6
    cmds = msgpack.unpackb(argv[5], raw=True)
    assert cmds[0] == [b"PUBLISH", b"ch", b"m"]
    assert cmds[1] == [b"LPUSH", b"l", *range(idem.MAX_ARGS)]
    assert cmds[2] == [b"LPUSH", b"l", idem.MAX_ARGS, idem.MAX_ARGS + 1]


def test_both_bridges_read_the_shared_service_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", "http://registry:8081/apis/ccompat/v7")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("REDIS_BRIDGE_TOPIC_PREFIX", "t1.")
    for cls in (RedisBridgeSettings, NatsBridgeSettings):
        st = cls.load()
        assert st.schema_registry_url == "http://registry:8081/apis/ccompat/v7"
        assert st.kafka_bootstrap_servers == "k1:9092,k2:9092"
    rs = RedisBridgeSettings.load()
    assert rs.full_topics[0] == "t1.stock_trades_realtime" and rs.full_app_id == "t1.tickwire-bridge-redis"
    assert rs.prefixed("bridge.redis.dlq") == "t1.bridge.redis.dlq"


def test_unknown_prefixed_variables_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_BRIDGE_BATCH_WITHIN_MS", "5")  # a faust-era setting
    with pytest.raises(UnknownSettingError):
        NatsBridgeSettings.load()
