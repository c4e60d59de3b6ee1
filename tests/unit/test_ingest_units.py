"""Pure parts of the ingest layer: settings, adapters' frame handling, subscription diffs, runner DLQ path."""

from __future__ import annotations

import threading
import time
from typing import Any

import msgpack
import orjson
import pytest

from tickwire.contract.adapter import (
    AuthError,
    RetryableVendorError,
    SymbolLimitError,
    VendorWarning,
    diff_subs,
)
from tickwire.contract.envelope import H_ERROR_CLASS, Envelope
from tickwire.contract.settings import is_local_url
from tickwire.ingest.runner import Runner
from tickwire.settings import UnknownSettingError
from tickwire.vendors.alpaca.adapter import AlpacaAdapter
from tickwire.vendors.alpaca.settings import AlpacaSettings
from tickwire.vendors.binance.adapter import BinanceAdapter
from tickwire.vendors.binance.settings import BinanceSettings
from tickwire.vendors.coinbase.adapter import CoinbaseAdapter


def test_settings_defaults_env_and_unknown_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    s = AlpacaSettings.load()
    assert s.symbols == ("AAPL", "SPY", "QQQ") and s.crypto_symbols == ("BTC/USD", "ETH/USD")
    assert s.feed == "iex" and s.stock_url.endswith("/v2/iex") and s.crypto_url.endswith("/v1beta3/crypto/us")
    monkeypatch.setenv("ALPACA_SYMBOLS", "MSFT, NVDA")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "h:9")
    s = AlpacaSettings.load()
    assert s.symbols == ("MSFT", "NVDA") and s.kafka_bootstrap_servers == "h:9"
    monkeypatch.setenv("ALPACA_SYMBOL", "x")
    with pytest.raises(UnknownSettingError):
        AlpacaSettings.load()
    monkeypatch.setenv("ALPACA_API_KEY", "key")
    assert "key" not in repr(BinanceSettings.load())
    assert is_local_url("ws://127.0.0.1:5/v2/iex") and not is_local_url(
        "wss://stream.data.alpaca.markets/v2/iex"
    )


def test_diff_subs() -> None:
    old = {"trades": frozenset({"A", "B"}), "bars": frozenset({"A"})}
    new = {"trades": frozenset({"B", "C"}), "quotes": frozenset({"A"})}
    assert diff_subs(new, old) == (
        {"trades": frozenset({"C"}), "quotes": frozenset({"A"})},
        {"trades": frozenset({"A"}), "bars": frozenset({"A"})},
    )


def _alpaca(**kw: Any) -> AlpacaAdapter:
    return AlpacaAdapter(AlpacaSettings.load(api_key="k", secret_key="s", **kw), feed="stocks")


def test_alpaca_keys_errors_and_acks() -> None:
    a = _alpaca()
    assert a.stream == "stocks.iex" and a.content_type == "json"
    assert a.classify(b'[{"T":"t","S":"AAPL"},{"T":"q","S":"AAPL"}]') == "AAPL"
    assert a.classify(b'[{"T":"t","S":"AAPL"},{"T":"t","S":"SPY"}]') is None
    assert a.classify(b'[{"T":"t","S":') is None  # malformed: keyed by stream
    assert a.is_data(b'[{"T":"b","S":"AAPL"}]') and not a.is_data(b'[{"T":"success","msg":"connected"}]')
    for code, exc in (
        (402, AuthError),
        (401, AuthError),
        (404, AuthError),
        (405, SymbolLimitError),
        (409, VendorWarning),
        (407, RetryableVendorError),
    ):
        with pytest.raises(exc):
            a.check(orjson.dumps([{"T": "error", "code": code, "msg": "x"}]))
    with pytest.raises(RetryableVendorError) as info:
        a.check(b'[{"T":"error","code":406,"msg":"connection limit exceeded"}]')
    assert info.value.backoff_hint == 90.0
    ack = a.check(b'[{"T":"subscription","trades":["AAPL"],"quotes":[],"bars":["SPY"]}]')
    assert ack == {"trades": frozenset({"AAPL"}), "quotes": frozenset(), "bars": frozenset({"SPY"})}
    (frame,) = a.subscribe_frames({"trades": frozenset({"SPY", "AAPL"}), "bars": frozenset()})
    assert orjson.loads(frame) == {"action": "subscribe", "trades": ["AAPL", "SPY"]}


def test_alpaca_msgpack_and_sip_url() -> None:
    a = _alpaca(msgpack=True, feed="sip")
    assert a.content_type == "msgpack" and a.url({}).endswith("/v2/sip") and a.stream == "stocks.sip"
    assert a.http_headers() == ["Content-Type: application/msgpack"]
    (frame,) = a.unsubscribe_frames({"quotes": frozenset({"AAPL"})})
    assert isinstance(frame, bytes) and msgpack.unpackb(frame) == {
        "action": "unsubscribe",
        "quotes": ["AAPL"],
    }
    assert a.classify(msgpack.packb([{"T": "t", "S": "AAPL"}])) == "AAPL"


def test_binance_frames_and_rest_requests() -> None:
    b = BinanceAdapter(BinanceSettings.load(), rest_url="http://h")
    assert b.classify(b'{"stream":"btcusdt@depth@100ms","data":{}}') == "BTCUSDT"
    assert b.classify(b'{"result":null,"id":1}') is None
    assert b.is_data(b'{"stream":"x@aggTrade","data":{}}') and not b.is_data(b'{"result":null,"id":1}')
    (f,) = b.subscribe_frames({"aggTrade": frozenset({"BTCUSDT"}), "depth@100ms": frozenset({"BTCUSDT"})})
    assert orjson.loads(f) == {
        "method": "SUBSCRIBE",
        "params": ["btcusdt@aggTrade", "btcusdt@depth@100ms"],
        "id": 1,
    }
    reqs = b.rest_requests({"depth@100ms": frozenset({"BTCUSDT"})}, reconnected=False)
    assert reqs[0][0] == "rest.exchangeInfo" and "BTCUSDT" in reqs[0][1].replace("%22", '"')
    assert reqs[1] == (
        "rest.depth?symbol=BTCUSDT&limit=1000",
        "http://h/api/v3/depth?symbol=BTCUSDT&limit=1000",
        "BTCUSDT",
    )
    with pytest.raises(VendorWarning):
        b.check(b'{"code":2,"msg":"Invalid request","id":3}')


def test_coinbase_frames() -> None:
    from tickwire.vendors.coinbase.settings import CoinbaseSettings

    c = CoinbaseAdapter(CoinbaseSettings.load())
    assert c.classify(b'{"type":"ticker","sequence":1,"product_id":"BTC-USD"}') == "BTC-USD"
    assert c.is_data(b'{"type":"heartbeat","product_id":"BTC-USD"}')
    assert not c.is_data(b'{"type":"subscriptions","channels":[]}')
    ack = c.check(b'{"type":"subscriptions","channels":[{"name":"ticker","product_ids":["ETH-USD"]}]}')
    assert ack == {"ticker": frozenset({"ETH-USD"})}
    with pytest.raises(VendorWarning):
        c.check(b'{"type":"error","message":"Failed to subscribe","reason":"bad product"}')
    (f,) = c.subscribe_frames({"ticker": frozenset({"ETH-USD"})})
    assert orjson.loads(f) == {
        "type": "subscribe",
        "channels": [{"name": "ticker", "product_ids": ["ETH-USD"]}],
    }


class RecordingProducer:
    """Stands in for Kafka in this unit test: records what would be produced."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = []

    def produce(
        self, topic: str, value: bytes, key: bytes | None, headers: Any, *, stream: str | None = None
    ) -> bool:
        self.records.append((topic, value, key, list(headers)))
        return True

    def check_fatal(self) -> None:
        """No fatal producer errors here."""


def test_oversize_frame_goes_to_dlq_with_reason_and_head() -> None:
    from tickwire.vendors.alpaca.simulator import AlpacaSimulator

    sim = AlpacaSimulator(mode="manual", symbols=["AAPL"])
    sim.start()
    try:
        s = AlpacaSettings.load(
            api_key="k",
            secret_key="s",
            symbols=("AAPL",),
            stock_channels=("trades",),
            max_frame_bytes=10_000,
            dlq_head_bytes=100,
            subscriptions_live=False,
        )
        prod = RecordingProducer()
        r = Runner(
            AlpacaAdapter(s, feed="stocks", url=sim.url + "/v2/iex"),
            prod,
            s,  # type: ignore[arg-type]
            subs={"trades": frozenset({"AAPL"})},
            encode=lambda rec: b"",
        )
        t = threading.Thread(target=r.run, daemon=True)
        t.start()
        deadline = time.monotonic() + 10
        # The runner is ready once it sent its subscribe; the simulator registers it a moment later.
        while (
            not (r.ready.is_set() and sim.connections and "trades:AAPL" in sim.connections[0].subscriptions)
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        sim.inject("oversize", size=50_000)
        # make_event draws a trade or a quote; only trades are subscribed here.
        trade = next(e for e in iter(lambda: sim.make_event("AAPL"), None) if e["T"] == "t")
        sim.publish([trade])
        while len([x for x in prod.records if x[0] == "alpaca.raw.dlq"]) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        r.stop()
        t.join(5)
    finally:
        sim.stop()
    (dlq,) = [x for x in prod.records if x[0] == "alpaca.raw.dlq"]
    headers = dict(dlq[3])
    assert headers[H_ERROR_CLASS] == b"FrameTooLarge" and len(dlq[1]) == 100
    big = next(f for f in sim.connections[0].sent if len(f) > 10_000)
    assert dlq[1] == big[:100]
    raw = [x for x in prod.records if x[0] == "alpaca.raw"]
    seqs = sorted([Envelope.from_headers(x[3]).seq for x in raw] + [Envelope.from_headers(dlq[3]).seq])
    assert seqs == list(range(1, len(seqs) + 1))  # the DLQ'd frame holds its seq: traceable, not lost
