"""Binance and Coinbase producers against their simulators and a real Kafka broker."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Message

from tests.helpers import consume_until
from tickwire.contract.adapter import Subs, VendorAdapter
from tickwire.contract.envelope import Envelope
from tickwire.contract.settings import IngestSettings
from tickwire.ingest import cli
from tickwire.ingest.runner import Runner
from tickwire.ingest.subscriptions import main as subscriptions_main
from tickwire.simulators.base import SimServer
from tickwire.topic_admin import ensure_topics
from tickwire.vendors.binance.adapter import BinanceAdapter
from tickwire.vendors.binance.adapter import default_subs as binance_subs
from tickwire.vendors.binance.settings import BinanceSettings
from tickwire.vendors.binance.simulator import BinanceSimulator
from tickwire.vendors.coinbase.adapter import CoinbaseAdapter
from tickwire.vendors.coinbase.adapter import default_subs as coinbase_subs
from tickwire.vendors.coinbase.settings import CoinbaseSettings
from tickwire.vendors.coinbase.simulator import CoinbaseSimulator

pytestmark = pytest.mark.integration


@pytest.fixture
def bootstrap(kafka_bootstrap: str) -> str:
    return kafka_bootstrap  # tests/conftest.py: env, container or the shared local broker


def wait_for(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def consume(bootstrap: str, topic: str, n: int, timeout: float) -> list[Message]:
    return consume_until(bootstrap, topic, lambda out: len(out) >= n, timeout)


def run_producer(
    settings: IngestSettings, adapter: VendorAdapter, subs: Subs
) -> tuple[Runner, threading.Thread]:
    got: list[Runner] = []
    t = threading.Thread(
        target=cli.run,
        args=(settings, adapter, subs),
        kwargs={"on_runner": got.append, "install_signals": False},
        daemon=True,
    )
    t.start()
    return wait_for(lambda: got and got[0], 30, "runner"), t


COMMON: dict[str, Any] = {
    "metrics_port": 0,
    "backoff_initial_s": 0.05,
    "backoff_max_s": 0.3,
    "heartbeat_interval_s": 1.0,
}


def check_raw(msgs: list[Message], sim: SimServer, stream: str) -> list[tuple[Envelope, Message]]:
    """WebSocket frames in Kafka == the frames the simulator sent, by seq, byte-exact and gap-free."""
    ws = sorted(((Envelope.from_headers(m.headers()), m) for m in msgs), key=lambda em: em[0].seq)
    ws = [(e, m) for e, m in ws if e.stream == stream]
    sent = [f for c in sim.connections for f in c.sent]
    assert [e.seq for e, _ in ws] == list(range(1, len(ws) + 1))
    assert [m.value() for _, m in ws] == sent[: len(ws)]
    assert len(sent) - len(ws) <= 50  # only frames in flight when the producer stopped
    return ws


def test_binance_session_live_subscribe_and_rest_snapshots(bootstrap: str) -> None:
    prefix = f"it{uuid.uuid4().hex[:10]}."
    sim = BinanceSimulator(rate=80, symbols=["BTCUSDT", "ETHUSDT", "BNBUSDT"], seed=1)
    sim.start()
    try:
        s = BinanceSettings.load(
            kafka_bootstrap_servers=bootstrap, topic_prefix=prefix, symbols=("BTCUSDT",), **COMMON
        )
        runner, t = run_producer(
            s, BinanceAdapter(s, url=sim.url + "/stream", rest_url=sim.http_url), binance_subs(s)
        )
        wait_for(lambda: runner.ready.is_set() and runner.seq("spot") > 50, 20, "data")
        assert (
            subscriptions_main(
                ["add", "binance", "aggTrade", "ETHUSDT", "--bootstrap", bootstrap, "--topic-prefix", prefix]
            )
            == 0
        )
        wait_for(lambda: "ethusdt@aggTrade" in sim.connections[0].subscriptions, 15, "live SUBSCRIBE")
        assert runner.connections == 1 and len(sim.connections) == 1
        assert (
            subscriptions_main(
                [
                    "add",
                    "binance",
                    "depth@100ms",
                    "BNBUSDT",
                    "--bootstrap",
                    bootstrap,
                    "--topic-prefix",
                    prefix,
                ]
            )
            == 0
        )
        wait_for(
            lambda: runner.out.last_seq("rest.depth?symbol=BNBUSDT&limit=1000"), 15, "snapshot after live add"
        )
        mark = runner.seq("spot")
        wait_for(lambda: runner.seq("spot") > mark + 50, 20, "more data")
        runner.stop()
        t.join(30)
        total = sum(runner.out.seqs().values())
    finally:
        sim.stop()
    msgs = consume(bootstrap, prefix + "binance.raw", total, 30)
    ws = check_raw(msgs, sim, "spot")
    keys = {m.key() for e, m in ws if m.value().startswith(b'{"stream":')}
    assert keys == {b"BTCUSDT", b"ETHUSDT", b"BNBUSDT"}
    rest = {Envelope.from_headers(m.headers()).stream: m for m in msgs}
    assert {
        "rest.exchangeInfo",
        "rest.depth?symbol=BTCUSDT&limit=1000",
        "rest.depth?symbol=BNBUSDT&limit=1000",
    } <= set(rest)
    assert rest["rest.depth?symbol=BTCUSDT&limit=1000"].key() == b"BTCUSDT"
    assert b"lastUpdateId" in rest["rest.depth?symbol=BTCUSDT&limit=1000"].value()
    assert Envelope.from_headers(rest["rest.exchangeInfo"].headers()).content_type == "json"


def test_coinbase_session_products_and_reconnect(bootstrap: str) -> None:
    prefix = f"it{uuid.uuid4().hex[:10]}."
    # Three partitions: the products answer (reference data, no one symbol) must reach every one.
    ensure_topics(bootstrap, {prefix + "coinbase.raw": 3})
    sim = CoinbaseSimulator(rate=80, seed=2)
    sim.start()
    try:
        s = CoinbaseSettings.load(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix, **COMMON)
        runner, t = run_producer(s, CoinbaseAdapter(s, url=sim.url, rest_url=sim.http_url), coinbase_subs(s))
        wait_for(lambda: runner.ready.is_set() and runner.seq("feed") > 50, 20, "data")
        sim.inject("drop")
        wait_for(lambda: runner.connections == 2 and runner.ready.is_set(), 20, "reconnected")
        mark = runner.seq("feed")
        wait_for(lambda: runner.seq("feed") > mark + 50, 20, "data after reconnect")
        runner.stop()
        t.join(30)
        n_products = runner.seq("rest.products")
        total = sum(runner.out.seqs().values()) + 2 * n_products  # + the copies on the other partitions
    finally:
        sim.stop()
    assert sim.connections[1].subscriptions == sim.connections[0].subscriptions != set()
    msgs = consume(bootstrap, prefix + "coinbase.raw", total, 30)
    by_seq = sorted(
        ((Envelope.from_headers(m.headers()), m) for m in msgs if dict(m.headers())["tw-stream"] == b"feed"),
        key=lambda em: em[0].seq,
    )
    seqs = [e.seq for e, _ in by_seq]
    assert seqs == list(range(1, len(seqs) + 1))
    assert {m.key() for _, m in by_seq if b'"product_id":"' in m.value()} == {b"BTC-USD", b"ETH-USD"}
    products = [m for m in msgs if dict(m.headers())["tw-stream"] == b"rest.products"]
    assert n_products == 1 and sorted(m.partition() for m in products) == [0, 1, 2]
    assert {(m.value(), Envelope.from_headers(m.headers()).seq) for m in products} == {
        (products[0].value(), 1)
    }
    assert products[0].value().startswith(b"[")
