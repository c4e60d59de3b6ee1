"""Binance simulator: byte-exact replay of the recorded session, generated streams, control, faults."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tickwire.recording import Recording, load_recording
from tickwire.vendors.binance.simulator import BinanceSimulator

pytestmark = pytest.mark.integration
REC = "/work/shared/data/recorded/"


def wait_for(cond: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met before deadline")


def as_bytes(m: str | bytes) -> bytes:
    return m.encode() if isinstance(m, str) else m


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture(scope="module")
def recording() -> Recording:
    return load_recording(REC + "cryptofeed-BINANCE.ws.1.0", REC + "cryptofeed-BINANCE.0")


@pytest.fixture
def replay_sim(recording: Recording) -> Iterator[BinanceSimulator]:
    sim = BinanceSimulator(mode="replay", recording=recording, speed=0)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def gen_sim() -> Iterator[BinanceSimulator]:
    sim = BinanceSimulator(rate=300, symbols=["BTCUSDT", "ETHUSDT"], seed=3, ping_interval=None)
    sim.start()
    yield sim
    sim.stop()


def test_replay_is_byte_for_byte(replay_sim: BinanceSimulator, recording: Recording) -> None:
    path = recording.url.split(":9443", 1)[1]  # the recorded /stream?streams=... request
    expected = [payload for _, payload in recording.frames]
    assert len(expected) == 265
    got: list[bytes] = []
    with connect(replay_sim.url + path, max_size=None) as ws:
        while len(got) < len(expected):
            got.append(as_bytes(ws.recv(timeout=10)))
    assert got == expected
    assert replay_sim.connections[0].sent == expected


def test_replay_raw_stream_gets_exact_data_slices(replay_sim: BinanceSimulator, recording: Recording) -> None:
    wanted = [p for _, p in recording.frames if p.startswith(b'{"stream":"nknusdt@aggTrade"')]
    assert wanted
    with connect(replay_sim.url + "/ws/nknusdt@aggTrade") as ws:
        got = [as_bytes(ws.recv(timeout=10)) for _ in wanted]
    assert got == [p[len(b'{"stream":"nknusdt@aggTrade","data":') : -1] for p in wanted]
    assert json.loads(got[0])["e"] == "aggTrade"


def test_replay_rest_answers(replay_sim: BinanceSimulator, recording: Recording) -> None:
    status, body = http_get(replay_sim.http_url + "/api/v3/exchangeInfo")
    assert status == 200 and body == recording.rest["https://api.binance.com/api/v3/exchangeInfo"]
    status, body = http_get(replay_sim.http_url + "/api/v3/depth?symbol=NKNUSDT&limit=10")
    first = next(json.loads(p)["data"] for _, p in recording.frames if b"nknusdt@depth" in p[:40])
    assert json.loads(body)["lastUpdateId"] == first["U"] - 1
    status, body = http_get(replay_sim.http_url + "/api/v3/depth?symbol=NOPE")
    assert status == 400 and json.loads(body)["code"] == -1121


def request(ws: ClientConnection, msg: dict[str, Any]) -> dict[str, Any]:
    rid = msg.get("id")
    ws.send(json.dumps(msg))
    while True:
        reply: dict[str, Any] = json.loads(ws.recv(timeout=5))
        if ("result" in reply or "code" in reply) and reply.get("id") == rid:
            return reply


def test_live_subscribe_list_and_errors(gen_sim: BinanceSimulator) -> None:
    with connect(gen_sim.url + "/ws") as ws:
        streams = ["btcusdt@aggTrade", "btcusdt@depth@100ms"]
        assert request(ws, {"method": "SUBSCRIBE", "params": streams, "id": 1}) == {"result": None, "id": 1}
        assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 2}) == {"result": streams, "id": 2}
        assert (
            request(ws, {"method": "UNSUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 3})["result"] is None
        )
        assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 4})["result"] == ["btcusdt@depth@100ms"]
        bad = request(ws, {"method": "SUBSCRIBE", "params": ["btcusdt@nope"], "id": 5})
        assert bad["code"] == 2 and bad["msg"].startswith("Invalid request")
        assert request(ws, {"method": "FOO", "id": 6})["code"] == 2
        ws.send("{not json")
        assert wait_for(lambda: json.loads(ws.recv(timeout=5)).get("code") == 3)


def test_generated_depth_is_continuous_and_matches_snapshot(gen_sim: BinanceSimulator) -> None:
    with connect(gen_sim.url + "/stream?streams=btcusdt@depth@100ms/btcusdt@aggTrade/btcusdt@kline_1s") as ws:
        _status, body = http_get(gen_sim.http_url + "/api/v3/depth?symbol=BTCUSDT&limit=1000")
        snap = json.loads(body)
        book = {"b": {p: q for p, q in snap["bids"]}, "a": {p: q for p, q in snap["asks"]}}
        want = {"depthUpdate", "aggTrade", "kline"}
        last_u, closed, kinds = snap["lastUpdateId"], None, set()
        deadline = time.monotonic() + 8
        # read until a closed 1s kline, every stream seen, and at least one diff applied past the snapshot
        while (
            closed is None or kinds < want or last_u == snap["lastUpdateId"]
        ) and time.monotonic() < deadline:
            frame = json.loads(ws.recv(timeout=5))
            data = frame["data"]
            kinds.add(data["e"])
            assert frame["stream"].startswith("btcusdt@")
            if data["e"] == "kline" and data["k"]["x"]:
                closed = data["k"]
            if data["e"] != "depthUpdate" or data["u"] <= last_u:
                continue
            assert data["U"] <= last_u + 1 <= data["u"]  # Binance's continuity rule
            last_u = data["u"]
            for side in ("b", "a"):
                for p, q in data[side]:
                    if q == "0.00000000":
                        book[side].pop(p, None)
                    else:
                        book[side][p] = q
        assert closed is not None and closed["T"] - closed["t"] == 999
        assert kinds >= want and last_u > snap["lastUpdateId"]
    # the book rebuilt from snapshot + diffs is sane: uncrossed, several levels deep
    assert len(book["b"]) >= 5 and len(book["a"]) >= 5
    assert max(map(Decimal, book["b"])) < min(map(Decimal, book["a"]))


def test_sent_bytes_equal_received_bytes(gen_sim: BinanceSimulator) -> None:
    with connect(gen_sim.url + "/ws/ethusdt@trade") as ws:
        got = [as_bytes(ws.recv(timeout=5)) for _ in range(20)]
    conn = wait_for(lambda: next((c for c in gen_sim.connections if c.path == "/ws/ethusdt@trade"), None))
    assert conn.sent[:20] == got
    assert all(json.loads(g)["e"] == "trade" for g in got)


def test_fault_drop_via_http_control(gen_sim: BinanceSimulator) -> None:
    with connect(gen_sim.url + "/ws/btcusdt@depth@100ms") as ws:
        ws.recv(timeout=5)
        req = urllib.request.Request(gen_sim.http_url + "/control/fault?fault=drop&seconds=0", method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            assert json.loads(r.read()) == {"ok": True}
        with pytest.raises(ConnectionClosed) as exc:
            for _ in range(10_000):
                ws.recv(timeout=5)
        assert exc.value.rcvd is None  # no close frame: the TCP connection was cut
    status, body = http_get(gen_sim.http_url + "/control/stats")
    stats = json.loads(body)
    assert stats["active"] == 0 and stats["connections"][0]["frames"] >= 1
    status, body = http_get(gen_sim.http_url + "/control/fault?fault=bogus")
    assert status == 400


def test_fault_mute_with_and_without_pongs(gen_sim: BinanceSimulator) -> None:
    with connect(gen_sim.url + "/ws/btcusdt@depth@100ms") as ws:
        ws.recv(timeout=5)
        gen_sim.inject("mute", seconds=1.5)
        time.sleep(0.05)  # frames already in flight before the fault
        while True:
            try:
                ws.recv(timeout=0.5)
            except TimeoutError:
                break
        assert ws.ping().wait(2)  # still answers pings
        ws.recv(timeout=5)  # data again after the fault
        gen_sim.inject("mute", seconds=1.5, pong=False)
        time.sleep(0.05)
        assert not ws.ping().wait(1)  # no pong while muted without pongs
        ws.recv(timeout=5)


def test_fault_malformed_oversize_skip_seq(gen_sim: BinanceSimulator) -> None:
    with connect(gen_sim.url + "/ws/btcusdt@depth@100ms", max_size=None) as ws:
        first = json.loads(ws.recv(timeout=5))
        gen_sim.inject("malformed")
        gen_sim.inject("oversize", size=3_000_000)
        frames = [ws.recv(timeout=5) for _ in range(2)]
        with pytest.raises(ValueError):
            json.loads(frames[0])
        assert len(frames[1]) >= 3_000_000 and json.loads(frames[1])["s"] == "OVERSIZE"
        prev_u = first["u"]
        while True:  # continuity up to the fault
            data = json.loads(ws.recv(timeout=5))
            if data["U"] != prev_u + 1:
                break
            prev_u = data["u"]
            if data["u"] > first["u"] + 10:
                gen_sim.inject("skip_seq")
        assert data["U"] > prev_u + 1


def test_max_lifetime_closes_connection() -> None:
    sim = BinanceSimulator(rate=10, max_lifetime=0.5, ping_interval=0.1)
    sim.start()
    try:
        with connect(sim.url + "/ws/btcusdt@trade") as ws:
            with pytest.raises(ConnectionClosed) as exc:
                while True:
                    ws.recv(timeout=5)
            assert exc.value.rcvd is not None and exc.value.rcvd.code == 1000
    finally:
        sim.stop()
