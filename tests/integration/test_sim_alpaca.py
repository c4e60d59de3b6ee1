"""Alpaca simulator against the official SDK (alpaca-py) and a plain WebSocket client."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgpack
import pytest
from websockets.sync.client import ClientConnection, connect

from tickwire.vendors.alpaca.simulator import AlpacaSimulator

pytestmark = pytest.mark.integration

TS = 1735830245123456789  # 2025-01-02T15:04:05.123456789Z


def wait_for(cond: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met before deadline")


@pytest.fixture
def sim() -> Iterator[AlpacaSimulator]:
    s = AlpacaSimulator(rate=0, credentials={"key1": "secret1", "key2": "secret2"})
    s.start()
    yield s
    s.stop()


def subscribed(sim: AlpacaSimulator, channel: str, symbol: str) -> bool:
    return any(symbol in c.state.get("subs", {}).get(channel, []) for c in sim.active())


def run_stream(stream: Any) -> threading.Thread:
    t = threading.Thread(target=stream.run, daemon=True)
    t.start()
    return t


def test_stock_stream_sdk_receives_typed_values(sim: AlpacaSimulator) -> None:
    from alpaca.data.live import StockDataStream

    got: list[Any] = []

    async def handler(obj: Any) -> None:
        got.append(obj)

    stream = StockDataStream("key1", "secret1", url_override=sim.url + "/v2/iex")
    stream.subscribe_trades(handler, "AAPL")
    stream.subscribe_quotes(handler, "AAPL")
    stream.subscribe_bars(handler, "AAPL")
    thread = run_stream(stream)
    try:
        wait_for(lambda: subscribed(sim, "bars", "AAPL"))
        assert sim.active()[0].binary  # the SDK negotiated MessagePack
        sim.publish(
            [
                {
                    "T": "t",
                    "S": "AAPL",
                    "i": 52983525029461,
                    "x": "V",
                    "p": Decimal("150.25"),
                    "s": 100,
                    "c": ["@"],
                    "z": "C",
                    "t": TS,
                },
                {
                    "T": "t",
                    "S": "MSFT",
                    "i": 1,
                    "x": "V",
                    "p": Decimal("1"),
                    "s": 1,
                    "c": [],
                    "z": "C",
                    "t": TS,
                },
                {
                    "T": "q",
                    "S": "AAPL",
                    "bx": "V",
                    "bp": Decimal("150.24"),
                    "bs": 3,
                    "ax": "Q",
                    "ap": Decimal("150.26"),
                    "as": 5,
                    "c": ["R"],
                    "z": "C",
                    "t": TS,
                },
                {
                    "T": "b",
                    "S": "AAPL",
                    "o": Decimal("150.1"),
                    "h": Decimal("150.5"),
                    "l": Decimal("149.9"),
                    "c": Decimal("150.25"),
                    "v": 12345,
                    "n": 17,
                    "vw": Decimal("150.2012"),
                    "t": 1735830240000000000,
                },
            ]
        )
        wait_for(lambda: len(got) >= 3)
    finally:
        stream.stop()
        thread.join(15)
    assert not thread.is_alive()
    trade, quote, bar = got
    assert (trade.symbol, trade.price, trade.size, trade.id, trade.exchange) == (
        "AAPL",
        150.25,
        100,
        52983525029461,
        "V",
    )
    assert trade.conditions == ["@"] and trade.tape == "C"
    assert trade.timestamp == datetime(2025, 1, 2, 15, 4, 5, 123456, tzinfo=UTC)
    assert (quote.bid_price, quote.bid_size, quote.ask_price, quote.ask_size) == (150.24, 3, 150.26, 5)
    assert (quote.bid_exchange, quote.ask_exchange) == ("V", "Q")
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (150.1, 150.5, 149.9, 150.25, 12345)
    assert (bar.trade_count, bar.vwap) == (17, 150.2012)
    assert bar.timestamp == datetime(2025, 1, 2, 15, 4, tzinfo=UTC)


def test_crypto_stream_sdk_receives_typed_values(sim: AlpacaSimulator) -> None:
    from alpaca.data.live import CryptoDataStream

    got: list[Any] = []

    async def handler(obj: Any) -> None:
        got.append(obj)

    stream = CryptoDataStream("key2", "secret2", url_override=sim.url + "/v1beta3/crypto/us")
    stream.subscribe_trades(handler, "BTC/USD")
    stream.subscribe_orderbooks(handler, "BTC/USD")
    thread = run_stream(stream)
    try:
        wait_for(lambda: subscribed(sim, "orderbooks", "BTC/USD"))
        sim.publish(
            [
                {
                    "T": "t",
                    "S": "BTC/USD",
                    "p": Decimal("97012.5"),
                    "s": Decimal("0.0123"),
                    "t": TS,
                    "i": 4242,
                    "tks": "S",
                },
                {
                    "T": "o",
                    "S": "BTC/USD",
                    "t": TS,
                    "b": [{"p": Decimal("97012.4"), "s": Decimal("0.5")}],
                    "a": [{"p": Decimal("97013"), "s": Decimal("1.25")}],
                    "r": True,
                },
            ]
        )
        wait_for(lambda: len(got) >= 2)
    finally:
        stream.stop()
        thread.join(15)
    trade, book = got
    assert (trade.symbol, trade.price, trade.size, trade.id) == ("BTC/USD", 97012.5, 0.0123, 4242)
    assert (book.bids[0].price, book.bids[0].size, book.asks[0].price, book.asks[0].size) == (
        97012.4,
        0.5,
        97013,
        1.25,
    )
    assert book.reset is True


@contextmanager
def connect_json(sim: AlpacaSimulator, path: str = "/v2/iex") -> Iterator[ClientConnection]:
    with connect(sim.url + path) as ws:
        assert json.loads(ws.recv(timeout=5)) == [{"T": "success", "msg": "connected"}]
        yield ws


def request(ws: ClientConnection, msg: dict[str, Any]) -> Any:
    ws.send(json.dumps(msg))
    return json.loads(ws.recv(timeout=5))


def test_auth_failure_not_authenticated_and_fault(sim: AlpacaSimulator) -> None:
    with connect_json(sim) as ws:
        assert request(ws, {"action": "subscribe", "trades": ["AAPL"]}) == [
            {"T": "error", "code": 401, "msg": "not authenticated"}
        ]
        assert request(ws, {"action": "auth", "key": "key1", "secret": "wrong"}) == [
            {"T": "error", "code": 402, "msg": "auth failed"}
        ]
        sim.inject("reject_auth", seconds=30)
        assert request(ws, {"action": "auth", "key": "key1", "secret": "secret1"})[0]["code"] == 402
        sim.clear_faults()
        wait_for(lambda: not sim.faults)
        assert request(ws, {"action": "auth", "key": "key1", "secret": "secret1"}) == [
            {"T": "success", "msg": "authenticated"}
        ]
        assert request(ws, {"action": "auth", "key": "key1", "secret": "secret1"})[0]["code"] == 403
        ws.send("not json")
        assert json.loads(ws.recv(timeout=5))[0]["code"] == 400


def test_sdk_auth_rejected(sim: AlpacaSimulator) -> None:
    from alpaca.data.live import StockDataStream

    async def handler(obj: Any) -> None:
        pass

    stream = StockDataStream("key1", "bad-secret", url_override=sim.url + "/v2/iex")
    stream.subscribe_trades(handler, "AAPL")
    thread = run_stream(stream)
    try:
        conn = wait_for(lambda: next((c for c in sim.connections if c.sent[1:]), None))
        reply = msgpack.unpackb(conn.sent[1])
        assert reply == [{"T": "error", "code": 402, "msg": "auth failed"}]
        assert not conn.state.get("key")
    finally:
        stream.stop()
        thread.join(15)


def test_second_connection_with_same_key_gets_406(sim: AlpacaSimulator) -> None:
    with connect_json(sim) as first:
        assert (
            request(first, {"action": "auth", "key": "key1", "secret": "secret1"})[0]["msg"]
            == "authenticated"
        )
        with connect_json(sim) as second:
            reply = request(second, {"action": "auth", "key": "key1", "secret": "secret1"})
            assert reply == [{"T": "error", "code": 406, "msg": "connection limit exceeded"}]
            with pytest.raises(Exception, match=r"1000|closed|received"):
                second.recv(timeout=5)
        # another key is its own connection
        with connect_json(sim) as other:
            assert (
                request(other, {"action": "auth", "key": "key2", "secret": "secret2"})[0]["msg"]
                == "authenticated"
            )


def test_subscription_lists_and_only_subscribed_data_json_exact_numbers(sim: AlpacaSimulator) -> None:
    with connect_json(sim) as ws:
        request(ws, {"action": "auth", "key": "key1", "secret": "secret1"})
        sub = request(ws, {"action": "subscribe", "trades": ["AAPL", "SPY"], "quotes": ["*"]})
        assert sub[0]["trades"] == ["AAPL", "SPY"] and sub[0]["quotes"] == ["*"] and sub[0]["bars"] == []
        unsub = request(ws, {"action": "unsubscribe", "trades": ["SPY"]})
        assert unsub[0]["trades"] == ["AAPL"]
        sim.publish(
            [
                {
                    "T": "t",
                    "S": "SPY",
                    "i": 1,
                    "x": "V",
                    "p": Decimal("590.5"),
                    "s": 1,
                    "c": [],
                    "z": "B",
                    "t": TS,
                },
                {
                    "T": "t",
                    "S": "AAPL",
                    "i": 2,
                    "x": "V",
                    "p": Decimal("150.2500"),
                    "s": 100,
                    "c": ["@"],
                    "z": "C",
                    "t": TS,
                },
            ]
        )
        raw = ws.recv(timeout=5)
        assert raw == (
            '[{"T":"t","S":"AAPL","i":2,"x":"V","p":150.2500,"s":100,"c":["@"],"z":"C",'
            '"t":"2025-01-02T15:04:05.123456789Z"}]'
        )
        assert sim.active()[0].sent[-1] == raw.encode()


def test_generated_stream_rate_batches_and_symbols() -> None:
    sim = AlpacaSimulator(rate=200, batch=5, symbols=["AAPL", "MSFT", "BTC/USD"], seed=7)
    sim.start()
    try:
        with connect_json(sim) as ws:
            request(ws, {"action": "auth", "key": "k", "secret": "s"})
            request(ws, {"action": "subscribe", "trades": ["AAPL"], "quotes": ["AAPL", "BTC/USD"]})
            events: list[dict[str, Any]] = []
            frames = 0
            while len(events) < 100:
                frame = json.loads(ws.recv(timeout=5), parse_float=Decimal)
                frames += 1
                assert 1 <= len(frame) <= 5
                events += frame
        assert {e["S"] for e in events} == {"AAPL"}  # BTC/USD is not on the stock feed
        assert {e["T"] for e in events} == {"t", "q"}
        assert frames < len(events)  # several messages per frame
        for e in events:
            price = e["p"] if e["T"] == "t" else e["bp"]
            assert Decimal(price) == Decimal(price).quantize(Decimal("0.01"))  # whole cents
    finally:
        sim.stop()
