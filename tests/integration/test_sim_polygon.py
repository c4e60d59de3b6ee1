"""Polygon/Massive simulator against the official client (``massive.WebSocketClient``) and plain HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from massive import WebSocketClient
from massive.exceptions import AuthError

from tests.helpers import wait_for
from tickwire.vendors.polygon.simulator import CONTRACTS_PATH, PolygonSimulator

pytestmark = pytest.mark.integration
T_MS = 1735830245123


@pytest.fixture
def sim() -> Iterator[PolygonSimulator]:
    s = PolygonSimulator(mode="manual", rate=0, credentials={"good-key"}, seed=1, batch=5)
    s.start()
    yield s
    s.stop()


class Client:
    """The official client in its own thread and event loop, raw frames collected."""

    def __init__(self, sim: PolygonSimulator, market: str, key: str, subs: list[str]) -> None:
        self.ws = WebSocketClient(
            api_key=key,
            feed=f"127.0.0.1:{sim.port}",
            market=market,
            secure=False,
            raw=True,
            subscriptions=subs,
            max_reconnects=3,
        )
        self.frames: list[str] = []
        self.error: BaseException | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        async def proc(msg: Any) -> None:
            self.frames.append(msg)

        try:
            self.loop.run_until_complete(asyncio.wait_for(self.ws.connect(proc), 30))
        except BaseException as exc:
            self.error = exc

    def close(self) -> None:
        if self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.ws.close(), self.loop).result(5)
        self.thread.join(10)
        assert not self.thread.is_alive()


def _ev(frames: list[str]) -> list[dict[str, Any]]:
    return [e for f in frames for e in json.loads(f)]


def test_official_client_authenticates_subscribes_and_receives_exact_frames(sim: PolygonSimulator) -> None:
    c = Client(sim, "stocks", "good-key", ["T.SPY", "Q.SPY", "AM.SPY"])
    try:
        wait_for(lambda: sim.active() and sim.active()[0].subscriptions == {"T.SPY", "Q.SPY", "AM.SPY"}, 10)
        conn = sim.active()[0]
        assert conn.state["key"] == "good-key"
        # one success status per channel, in whatever order the client's set produced
        acks = sorted(e["message"] for e in _ev(c.frames) if e.get("status") == "success")
        assert acks == ["subscribed to: AM.SPY", "subscribed to: Q.SPY", "subscribed to: T.SPY"]
        n0 = len(c.frames)
        trade = {
            "ev": "T",
            "sym": "SPY",
            "x": 4,
            "i": "52983525029461",
            "z": 1,
            "p": Decimal("670.125"),
            "s": 100,
            "c": [0, 12],
            "t": T_MS,
            "q": 3681328,
        }
        bid, ask = Decimal("670.12"), Decimal("670.13")
        quote = {
            "ev": "Q",
            "sym": "SPY",
            "bx": 11,
            "ax": 12,
            "bp": bid,
            "ap": ask,
            "bs": 3,
            "as": 5,
            "c": 1,
            "t": T_MS,
            "q": 3681329,
            "z": 1,
        }
        other = {**trade, "sym": "AAPL"}  # not subscribed: never sent
        sim.publish([trade, quote, other, {**trade, "q": 3681335, "p": Decimal("670.2")}])
        wait_for(lambda: len(c.frames) >= n0 + 1, 10)
        sent = [f.decode() for f in conn.sent]
        # the client reads `connected` and `auth_success` itself; every later frame reaches the processor
        assert [json.loads(f)[0]["status"] for f in sent[:2]] == ["connected", "auth_success"]
        assert c.frames == sent[2:]  # exactly what the simulator sent, byte for byte
        data = json.loads(c.frames[-1])
        assert [e["ev"] for e in data] == ["T", "Q", "T"]  # a mixed frame
        assert c.frames[-1].startswith('[{"ev":"T","sym":"SPY","x":4,"i":"52983525029461","z":1,"p":670.125,')
    finally:
        c.close()


def test_bad_key_raises_the_clients_auth_error(sim: PolygonSimulator) -> None:
    c = Client(sim, "stocks", "bad-key", ["T.SPY"])
    c.thread.join(15)
    assert isinstance(c.error, AuthError) and "authentication failed" in str(c.error)
    assert len(sim.connections) == 1 and sim.connections[0].subscriptions == set()


def test_server_drop_makes_the_client_reconnect_and_resubscribe(sim: PolygonSimulator) -> None:
    c = Client(sim, "options", "good-key", ["T.O:SPY251219C00650000", "Q.O:SPY251219C00650000"])
    try:
        want = {"T.O:SPY251219C00650000", "Q.O:SPY251219C00650000"}
        wait_for(lambda: sim.active() and sim.active()[0].subscriptions == want, 10)
        sim.inject("drop")
        wait_for(lambda: len(sim.connections) == 2 and sim.connections[1].subscriptions == want, 15)
        assert not sim.connections[0].open
        sim.publish(
            [
                {
                    "ev": "T",
                    "sym": "O:SPY251219C00650000",
                    "x": 65,
                    "p": Decimal("21.5"),
                    "s": 2,
                    "c": [209],
                    "t": T_MS,
                    "q": 7,
                }
            ]
        )
        wait_for(lambda: any('"p":21.5' in f for f in c.frames), 10)
    finally:
        c.close()


def test_statuses_auth_timeout_and_eviction(sim: PolygonSimulator) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    sim.auth_timeout = 0.3
    with connect(f"{sim.url}/stocks") as ws:
        assert json.loads(ws.recv(5)) == [
            {"ev": "status", "status": "connected", "message": "Connected Successfully"}
        ]
        assert json.loads(ws.recv(5))[0]["status"] == "auth_timeout"
    sim.auth_timeout = 10
    with connect(f"{sim.url}/options") as old, connect(f"{sim.url}/options") as new:
        for ws in (old, new):
            ws.recv(5)
            ws.send(json.dumps({"action": "auth", "params": "good-key"}))
            if ws is new:
                assert json.loads(new.recv(5))[0]["status"] == "auth_success"
            else:
                old.recv(5)
        evicted = json.loads(old.recv(5))
        assert evicted[0]["status"] == "max_connections"
        with pytest.raises(ConnectionClosed):
            old.recv(5)
        assert old.close_code == 1008
        new.send(
            json.dumps({"action": "subscribe", "params": "T.O:SPY251219C00650000,T.O:SPY251219P00650000"})
        )
        acks = json.loads(new.recv(5))
        assert [a["message"] for a in acks] == [
            "subscribed to: T.O:SPY251219C00650000",
            "subscribed to: T.O:SPY251219P00650000",
        ]
        new.send(json.dumps({"action": "unsubscribe", "params": "T.O:SPY251219C00650000"}))
        assert json.loads(new.recv(5))[0]["message"] == "unsubscribed to: T.O:SPY251219C00650000"


def test_contracts_listing_pages_like_massive(sim: PolygonSimulator) -> None:
    today = sim.expiries[0]
    url = f"{sim.http_url}{CONTRACTS_PATH}?underlying_ticker=SPY&expiration_date.gte={today}&limit=100"
    tickers: list[str] = []
    pages = 0
    while url:
        with urllib.request.urlopen(url, timeout=5) as r:
            page = json.loads(r.read())
        assert page["status"] == "OK"
        tickers += [row["ticker"] for row in page["results"]]
        first = page["results"][0]
        assert set(first) >= {
            "ticker",
            "strike_price",
            "expiration_date",
            "contract_type",
            "underlying_ticker",
        }
        url, pages = page.get("next_url"), pages + 1
    assert tickers == [c[0] for c in sim.contracts] and pages == -(-len(tickers) // 100)
    assert dt.date.fromisoformat(first["expiration_date"]) in sim.expiries
    assert f"O:SPY{today:%y%m%d}C00670000" in tickers  # the chain is centred on the underlying


@contextmanager
def _authed(sim: PolygonSimulator, path: str, subs: str) -> Iterator[Any]:
    from websockets.sync.client import connect

    with connect(f"{sim.url}{path}") as ws:
        ws.recv(5)
        ws.send(json.dumps({"action": "auth", "params": "good-key"}))
        assert json.loads(ws.recv(5))[0]["status"] == "auth_success"
        ws.send(json.dumps({"action": "subscribe", "params": subs}))
        ws.recv(5)
        yield ws


def test_underlying_on_command_and_on_schedule(sim: PolygonSimulator) -> None:
    with _authed(sim, "/stocks", "T.SPY") as ws:
        with urllib.request.urlopen(f"{sim.http_url}/sim/underlying?price=690.5", timeout=5) as r:
            assert json.loads(r.read()) == {"ok": True, "price": "690.5"}
        (t,) = json.loads(ws.recv(5))
        assert (t["ev"], t["sym"], t["p"]) == ("T", "SPY", 690.5)
        assert '"p":690.5,' in json.dumps(t, separators=(",", ":"))
    sched = PolygonSimulator(
        mode="manual", rate=0, schedule=[Decimal(670), Decimal(690)], schedule_interval=0.2
    )
    sched.start()
    try:
        with _authed(sched, "/stocks", "T.SPY") as ws:
            prices = [json.loads(ws.recv(5))[0]["p"] for _ in range(3)]
        assert prices in ([670, 690, 670], [690, 670, 690])
    finally:
        sched.stop()


def test_faults_reject_auth_skip_seq_malformed(sim: PolygonSimulator) -> None:
    from websockets.sync.client import connect

    sim.inject("reject_auth", seconds=5)
    with connect(f"{sim.url}/stocks") as ws:
        ws.recv(5)
        ws.send(json.dumps({"action": "auth", "params": "good-key"}))
        assert json.loads(ws.recv(5))[0]["status"] == "auth_failed"
    sim.clear_faults()
    wait_for(lambda: not sim.faults, 5)
    with _authed(sim, "/stocks", "T.SPY") as ws:
        sim.publish([sim.trade("SPY")])
        q1 = json.loads(ws.recv(5))[0]["q"]
        sim.inject("skip_seq")
        sim.publish([sim.trade("SPY")])
        assert json.loads(ws.recv(5))[0]["q"] == q1  # a repeat: what the parser reports as a gap
        sim.publish([sim.trade("SPY")])
        assert json.loads(ws.recv(5))[0]["q"] > q1
        sim.inject("malformed")
        sim.publish([sim.trade("SPY")])
        with pytest.raises(ValueError):
            json.loads(ws.recv(5))
        assert json.loads(ws.recv(5))[0]["ev"] == "T"
