"""Legacy control plane in the Redis bridge: Redis events/sets -> compacted control.subscriptions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from tests.helpers import unique_name, wait_for
from tests.integration.test_bridge_helpers import Proc, bridge_proc, create_topics, procs
from tickwire.contract.control import ControlReader

__all__ = ["procs"]

pytestmark = pytest.mark.integration


def _sets(kafka: str, topic: str) -> dict[str, tuple[str, ...]]:
    reader = ControlReader(kafka, topic)
    try:
        return {k: v.symbols for k, v in reader.read_to_end().items()}
    finally:
        reader.close()


def test_reconcile_then_subscribe_and_unsubscribe(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    prefix = unique_name("cp") + "."
    kp = unique_name("k") + ":"
    create_topics(kafka_bootstrap, [prefix + "stock_trades_realtime"])
    r = redis.Redis.from_url(redis_url)
    r.sadd(f"{kp}active_subscriptions:crypto", "ETH/USD")  # state left by the gateway before start
    args = ["--bootstrap", kafka_bootstrap, "--redis-url", redis_url, "--topic-prefix", prefix]
    args += ["--key-prefix", kp, "--topics", "stock_trades_realtime"]
    procs.append(bridge_proc("redis", args, tmp_path / "bridge.log").start())
    topic = prefix + "control.subscriptions"

    # reconcile() at start: the Redis set reaches the control topic (crypto -> alpaca-crypto trades + bars)
    wait_for(
        lambda: _sets(kafka_bootstrap, topic).get("alpaca-crypto:bars") == ("ETH/USD",), 60, what="reconcile"
    )
    assert _sets(kafka_bootstrap, topic)["alpaca-crypto:trades"] == ("ETH/USD",)
    assert "alpaca:trades" not in _sets(kafka_bootstrap, topic)  # an empty set is never written

    channel = f"{kp}system:subscription_updates"
    wait_for(lambda: r.pubsub_numsub(channel)[0][1] == 1, 30, what="control plane subscribed")
    r.publish(channel, json.dumps({"action": "subscribe", "type": "stock", "symbols": ["AAPL", "MSFT"]}))
    wait_for(lambda: r.smembers(f"{kp}active_subscriptions:stock") == {b"AAPL", b"MSFT"}, 30, what="set")
    wait_for(lambda: _sets(kafka_bootstrap, topic).get("alpaca:trades") == ("AAPL", "MSFT"), 30, what="sub")
    assert _sets(kafka_bootstrap, topic)["alpaca:bars"] == ("AAPL", "MSFT")

    r.publish(channel, json.dumps({"event": "unsubscribe", "assetType": "stock", "symbol": "AAPL"}))
    wait_for(lambda: _sets(kafka_bootstrap, topic).get("alpaca:bars") == ("MSFT",), 30, what="unsubscribe")
    assert r.smembers(f"{kp}active_subscriptions:stock") == {b"MSFT"}
    assert _sets(kafka_bootstrap, topic)["alpaca:trades"] == ("MSFT",)
    assert _sets(kafka_bootstrap, topic)["alpaca-crypto:trades"] == ("ETH/USD",)  # untouched
