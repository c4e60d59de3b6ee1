"""Coinbase simulator: byte-exact replay after subscribe, generated channels, errors, faults."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tickwire.recording import Recording, load_recording
from tickwire.vendors.coinbase.simulator import CoinbaseSimulator

pytestmark = pytest.mark.integration
REC = "/work/shared/data/recorded/"


@pytest.fixture(scope="module")
def recording() -> Recording:
    return load_recording(REC + "cryptofeed-COINBASE.ws.28.0", REC + "cryptofeed-COINBASE.0")


@pytest.fixture
def gen_sim() -> Iterator[CoinbaseSimulator]:
    sim = CoinbaseSimulator(rate=300, symbols=["BTC-USD", "ETH-USD"], seed=5, heartbeat_interval=0.2)
    sim.start()
    yield sim
    sim.stop()


def test_replay_after_subscribe_is_byte_for_byte(recording: Recording) -> None:
    sim = CoinbaseSimulator(mode="replay", recording=recording, speed=0)
    sim.start()
    try:
        expected = [p for _, p in recording.frames]
        assert len(recording.client) == 3 and len(expected) > 9000
        got: list[bytes] = []
        with connect(sim.url, max_size=None) as ws:
            for _, frame in recording.client:  # the recorded subscribe frames, as the client sent them
                ws.send(frame.decode())
            while len(got) < len(expected):
                m = ws.recv(timeout=10)
                got.append(m.encode() if isinstance(m, str) else m)
        assert got == expected
        with urllib.request.urlopen(sim.http_url + "/products", timeout=10) as r:
            assert r.read() == recording.rest["https://api.pro.coinbase.com/products"]
    finally:
        sim.stop()


def recv_json(ws: ClientConnection) -> dict[str, Any]:
    msg: dict[str, Any] = json.loads(ws.recv(timeout=5))
    return msg


def next_of(ws: ClientConnection, kind: str, limit: int = 5000) -> dict[str, Any]:
    for _ in range(limit):
        msg = recv_json(ws)
        if msg["type"] == kind:
            return msg
    raise AssertionError(f"no {kind}")


def test_subscribe_snapshot_updates_matches_heartbeat(gen_sim: CoinbaseSimulator) -> None:
    with connect(gen_sim.url) as ws:
        ws.send(
            json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["level2", "heartbeat"]})
        )
        subs = recv_json(ws)
        assert subs == {
            "type": "subscriptions",
            "channels": [
                {"name": "heartbeat", "product_ids": ["BTC-USD"]},
                {"name": "level2", "product_ids": ["BTC-USD"]},
            ],
        }
        snap = recv_json(ws)
        assert snap["type"] == "snapshot" and snap["product_id"] == "BTC-USD" and len(snap["bids"]) >= 5
        upd = next_of(ws, "l2update")
        assert upd["product_id"] == "BTC-USD" and upd["changes"][0][0] in ("buy", "sell")
        assert upd["time"].endswith("Z") and len(upd["time"].split(".")[1]) == 7  # microseconds + Z
        hb = next_of(ws, "heartbeat")
        assert {"sequence", "last_trade_id", "product_id", "time"} <= hb.keys()
        ws.send(
            json.dumps({"type": "subscribe", "channels": [{"name": "matches", "product_ids": ["ETH-USD"]}]})
        )
        assert next_of(ws, "subscriptions")["channels"][1] == {"name": "matches", "product_ids": ["ETH-USD"]}
        m1, m2 = next_of(ws, "match"), next_of(ws, "match")
        assert m1["product_id"] == "ETH-USD" and m2["trade_id"] == m1["trade_id"] + 1
        assert m2["sequence"] > m1["sequence"] and m1["side"] in ("buy", "sell")
        ws.send(
            json.dumps(
                {"type": "unsubscribe", "product_ids": ["BTC-USD"], "channels": ["level2", "heartbeat"]}
            )
        )
        assert next_of(ws, "subscriptions")["channels"] == [{"name": "matches", "product_ids": ["ETH-USD"]}]
    with connect(gen_sim.url) as ws:  # a late matches subscriber gets last_match first
        ws.send(json.dumps({"type": "subscribe", "product_ids": ["ETH-USD"], "channels": ["matches"]}))
        recv_json(ws)
        assert recv_json(ws)["type"] == "last_match"


def test_errors_and_reject_auth(gen_sim: CoinbaseSimulator) -> None:
    with connect(gen_sim.url) as ws:
        ws.send(json.dumps({"type": "subscribe", "product_ids": ["NOPE-USD"], "channels": ["ticker"]}))
        assert recv_json(ws) == {
            "type": "error",
            "message": "Failed to subscribe",
            "reason": "NOPE-USD is not a valid product",
        }
        ws.send(json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["bogus"]}))
        assert recv_json(ws)["reason"] == "bogus is not a valid channel"
        ws.send(json.dumps({"type": "hello"}))
        assert recv_json(ws)["type"] == "error"
        gen_sim.inject("reject_auth", seconds=10)
        ws.send(json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["ticker"]}))
        assert recv_json(ws) == {
            "type": "error",
            "message": "Authentication Failed",
            "reason": "authentication failure",
        }


def test_skip_seq_jumps_trade_id_and_sequence(gen_sim: CoinbaseSimulator) -> None:
    with connect(gen_sim.url) as ws:
        ws.send(
            json.dumps({"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channels": ["matches"]})
        )
        recv_json(ws)
        last: dict[str, dict[str, Any]] = {}
        jumped = None
        deadline = time.monotonic() + 10
        injected = False
        while jumped is None and time.monotonic() < deadline:
            m = next_of(ws, "match")
            prev = last.get(m["product_id"])
            if prev is not None and m["trade_id"] != prev["trade_id"] + 1:
                jumped = (prev, m)
            last[m["product_id"]] = m
            if len(last) == 2 and not injected:
                gen_sim.inject("skip_seq")
                injected = True
        assert jumped is not None
        prev, m = jumped
        assert m["trade_id"] == prev["trade_id"] + 6 and m["sequence"] >= prev["sequence"] + 1001
