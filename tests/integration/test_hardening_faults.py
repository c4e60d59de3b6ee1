"""Issue 16, faults side, against the real servers: outages back-pressure instead of DLQ'ing, permanent
bridge write errors escalate to the bridge DLQ, fatal producer errors end the process with a clear code,
and a crashed producer session is reported as a Gap by its successor.

Bridge scenarios run the real bridge loop and writers in-process (real Redis / NATS JetStream / Kafka DLQ);
the registry outage runs a real ``tickwire normalize`` process whose registry URL points at a TCP proxy
this test stops and starts (the shared registry itself is never stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import nats
import pytest
import redis
from confluent_kafka import KafkaError, Producer

from tests.helpers import FakeMessage, unique_name, wait_for
from tests.integration.test_bridge_helpers import consume_all, create_topics, trade
from tests.integration.test_ingest_alpaca import Producer as IngestThread
from tests.integration.test_ingest_alpaca import consume, settings
from tickwire.bridges import shapes
from tickwire.bridges.batch import BridgeLoop, Item, PermanentWriteError
from tickwire.bridges.config import NatsBridgeSettings, RedisBridgeSettings
from tickwire.bridges.nats_bridge import NatsWriter
from tickwire.bridges.redis_bridge import RedisWriter
from tickwire.contract.codec import Codec
from tickwire.contract.envelope import H_ERROR_MESSAGE, Envelope
from tickwire.contract.records import Gap, Quote, Trade
from tickwire.infra.process import free_port
from tickwire.ingest.producer import EXIT_FATAL
from tickwire.vendors.alpaca.simulator import AlpacaSimulator

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CODEC = Codec()


def Msg(topic: str, offset: int, record: Any) -> FakeMessage:
    """A consumed canonical record as the bridge loop reads it, stamped now."""
    return FakeMessage(topic, offset, CODEC.encode(record), int(time.time() * 1000))


async def handle_until_done(loop: BridgeLoop, batch: list[Any], attempts: int) -> int:
    """What the sink loop does: retry the same batch until the handler returns; returns the failures."""
    failures = 0
    for _ in range(attempts):
        try:
            await loop.handle(batch)
            return failures
        except PermanentWriteError:
            failures += 1
    raise AssertionError(f"batch still failing after {attempts} attempts")


# ---- Redis: a legacy key of the wrong type -------------------------------------------------------


def test_redis_wrong_type_key_goes_to_the_dlq_after_n_attempts_rest_written(
    kafka_bootstrap: str, redis_url: str
) -> None:
    prefix, kp = unique_name("hf") + ".", unique_name("hfk") + ":"
    create_topics(kafka_bootstrap, [prefix + "bridge.redis.dlq"])
    r: Any = redis.Redis.from_url(redis_url)
    r.set(f"{kp}market:MSFT:trades", b"legacy string")  # LPUSH onto it: WRONGTYPE
    r.hset(f"{kp}market:IBM:ticker", mapping={"legacy": "hash"})  # GET of it (read first): WRONGTYPE
    s = RedisBridgeSettings(
        redis_url=redis_url, key_prefix=kp, kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=prefix,
        permanent_error_attempts=3, control_plane=False,
    )  # fmt: skip
    loop = BridgeLoop(s, "redis", RedisWriter(s))
    topic = prefix + "stock_trades_realtime"
    recs = [trade(0, "AAPL"), trade(1, "MSFT"), trade(2, "IBM"), trade(3, "AAPL")]
    batch = [Msg(topic, 10 + i, rec) for i, rec in enumerate(recs)]

    async def run() -> int:
        try:
            return await handle_until_done(loop, batch, 10)
        finally:
            await loop.close()

    failures = asyncio.run(run())
    # The read (IBM's ticker) fails first, three times; then the write pre-check (MSFT's list), three.
    assert failures == 2 * (3 - 1)  # each key's third failed attempt DLQs its records instead of raising
    entries = [shapes.trade_list_entry(t) for t in (recs[3], recs[0])]
    assert r.lrange(f"{kp}market:AAPL:trades", 0, -1) == entries
    assert r.get(f"{kp}market:MSFT:trades") == b"legacy string"
    offsets = r.hgetall(f"{kp}tickwire:bridge:{s.full_app_id}:offsets")
    assert offsets == {f"{topic}:0".encode(): b"13"}  # past the DLQ'd records: they are handled
    dlq = consume_all(kafka_bootstrap, prefix + "bridge.redis.dlq", 2, timeout=20)
    got = {CODEC.decode(m.value()).symbol: dict(m.headers())[H_ERROR_MESSAGE] for m in dlq}
    assert set(got) == {"MSFT", "IBM"}
    assert got["MSFT"].startswith(b"WRONGTYPE (write)") and b"market:MSFT:trades is a string" in got["MSFT"]
    assert got["IBM"].startswith(b"WRONGTYPE (read)") and b"market:IBM:ticker" in got["IBM"]


def test_redis_partial_failure_never_half_applies_a_batch(redis_url: str) -> None:
    """The finding: LPUSH failing inside the batch while the offsets write applied -> the trade lost on
    retry. Now nothing of the batch is applied until the key is fixed; then all of it is."""
    kp = unique_name("hfp") + ":"
    r: Any = redis.Redis.from_url(redis_url)
    r.set(f"{kp}market:MSFT:trades", b"legacy")
    s = RedisBridgeSettings(redis_url=redis_url, key_prefix=kp, control_plane=False)
    items = [
        Item(trade(i, sym), "stock_trades_realtime", 0, i, 0.0) for i, sym in enumerate(["AAPL", "MSFT"])
    ]

    async def run() -> None:
        w = RedisWriter(s)
        try:
            with pytest.raises(PermanentWriteError) as ei:
                await w.write(items)
            assert [i.record.symbol for i in ei.value.items] == ["MSFT"]
            assert r.exists(f"{kp}tickwire:bridge:{s.full_app_id}:offsets") == 0  # nothing applied
            assert r.llen(f"{kp}market:AAPL:trades") == 0
            r.delete(f"{kp}market:MSFT:trades")  # the operator fixes the key
            await w.reset()
            assert await w.write(items) == 2
        finally:
            await w.stop()

    asyncio.run(run())
    assert r.llen(f"{kp}market:MSFT:trades") == 1 and r.llen(f"{kp}market:AAPL:trades") == 1


# ---- NATS: a full JetStream stream (max_bytes, discard new) ---------------------------------------


def test_jetstream_stream_full_goes_to_the_dlq_after_n_attempts(kafka_bootstrap: str, nats_url: str) -> None:
    prefix = unique_name("hfn") + "."
    stream = unique_name("HF").replace("-", "_").upper()
    create_topics(kafka_bootstrap, [prefix + "bridge.nats.dlq"])
    s = NatsBridgeSettings(
        nats_url=nats_url, stream=stream, subject_prefix=prefix, kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=prefix, max_bytes=1500, discard="new", permanent_error_attempts=2,
    )  # fmt: skip
    loop = BridgeLoop(s, "nats", NatsWriter(s))
    topic = prefix + "stock_trades_realtime"
    batch = [Msg(topic, i, trade(i)) for i in range(8)]  # ~450 bytes each: 3 fit in 1500

    async def run() -> tuple[int, int]:
        try:
            failures = await handle_until_done(loop, batch, 10)
            nc = await nats.connect(nats_url)
            try:
                info = await nc.jetstream().stream_info(stream)
                await nc.jetstream().delete_stream(stream)
            finally:
                await nc.close()
            return failures, info.state.messages
        finally:
            await loop.close()

    failures, stored = asyncio.run(run())
    assert failures == 1  # attempt 1 raises (retried), attempt 2 DLQs the refused ones
    assert 1 <= stored < 8
    dlq = consume_all(kafka_bootstrap, prefix + "bridge.nats.dlq", 8 - stored, timeout=20)
    assert sorted(CODEC.decode(m.value()).seq for m in dlq) == list(range(stored + 1, 9))
    assert all(b"maximum" in dict(m.headers())[H_ERROR_MESSAGE] for m in dlq)


# ---- producers ------------------------------------------------------------------------------------


def gaps_of(bootstrap: str, prefix: str, n: int, timeout: float) -> list[Gap]:
    msgs = consume(bootstrap, prefix + "tickwire.gaps", until=lambda out: len(out) >= n, timeout=timeout)
    return [g for g in (CODEC.decode(m.value()) for m in msgs) if isinstance(g, Gap)]


def test_fatal_producer_error_ends_with_exit_fatal_and_no_reconnect(kafka_bootstrap: str) -> None:
    prefix = unique_name("hff") + "."
    sim = AlpacaSimulator(mode="manual", symbols=["AAPL"])
    sim.start()
    try:
        s = settings(kafka_bootstrap, prefix, symbols=("AAPL",), stock_channels=("trades",))
        p = IngestThread(s, sim.url + "/v2/iex")
        wait_for(lambda: p.runner.ready.is_set(), 20, what="subscribed")
        # What librdkafka's error callback delivers when the idempotent producer is fenced / out of order.
        p.runner.producer._on_error(KafkaError(KafkaError._FATAL, "test: out-of-order sequence", fatal=True))
        p.thread.join(20)
        assert not p.thread.is_alive()
        assert p.rc == EXIT_FATAL
        assert len(sim.connections) == 1  # no reconnect loop
    finally:
        sim.stop()


def test_sigkilled_producer_next_session_emits_a_gap_naming_it(kafka_bootstrap: str) -> None:
    prefix = unique_name("hfs") + "."
    sim = AlpacaSimulator(mode="manual", symbols=["AAPL"])
    sim.start()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "ALPACA_API_KEY": "k",
           "ALPACA_SECRET_KEY": "s"}  # fmt: skip
    argv = [sys.executable, "-m", "tickwire.cli", "ingest", "alpaca", "--url", sim.url + "/v2/iex",
            "--topic-prefix", prefix, "--metrics-port", "0"]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: sim.connections and sim.connections[0].subscriptions, 30, what="first session")
        for _ in range(5):
            sim.publish([next(e for e in iter(lambda: sim.make_event("AAPL"), None) if e["T"] == "t")])

        def trades_in(out: list[Any]) -> int:
            return sum(1 for m in out if b'"T":"t"' in (m.value() or b""))

        raw = consume(
            kafka_bootstrap, prefix + "alpaca.raw", until=lambda out: trades_in(out) >= 5, timeout=20
        )
        assert trades_in(raw) == 5  # the control frames of the handshake come before them
        first = Envelope.from_headers(raw[0].headers())
        last_seq = max(Envelope.from_headers(m.headers()).seq for m in raw)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # The next session (in-process, same source/stream) finds the crashed session's marker.
        s = settings(kafka_bootstrap, prefix)
        p2 = IngestThread(s, sim.url + "/v2/iex")
        (gap,) = gaps_of(kafka_bootstrap, prefix, 1, 20)
        assert (gap.source, gap.stream, gap.reason, gap.detected_by) == (
            "alpaca",
            "stocks.iex",
            "dropped",
            "producer",
        )
        assert f"previous_session={first.session}" in gap.detail
        assert gap.last_seq_before == last_seq
        p2.stop()  # a clean stop: marked, so the session after it reports nothing
        p3 = IngestThread(s, sim.url + "/v2/iex")
        p3.stop()
        assert len(gaps_of(kafka_bootstrap, prefix, 2, 3)) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
        sim.stop()


# ---- normalizer: the schema registry unreachable mid-stream ---------------------------------------


class TcpProxy:
    """127.0.0.1:<port> -> upstream, stoppable: stopped, it refuses connections and cuts open ones."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._lsock: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(16)
        self._lsock = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def stop(self) -> None:
        ls, self._lsock = self._lsock, None
        if ls is not None:
            with contextlib.suppress(OSError):  # wakes the accept() (close alone leaves it listening)
                ls.shutdown(socket.SHUT_RDWR)
            ls.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def _accept(self, ls: socket.socket) -> None:
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return  # stopped
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def binance_frames(n: int, kind: str, start: int) -> list[bytes]:
    t = time.time_ns() // 1_000_000
    out = []
    for i in range(start, start + n):
        if kind == "quote":
            data: dict[str, Any] = {"u": i + 1, "s": "BTCUSDT", "b": f"{100 + i}.5", "B": "1.25",
                                    "a": f"{101 + i}.5", "A": "2"}  # fmt: skip
            out.append(json.dumps({"stream": "btcusdt@bookTicker", "data": data}).encode())
        else:
            data = {"e": "aggTrade", "E": t, "s": "BTCUSDT", "a": i, "p": f"{100 + i}.25", "q": "0.5",
                    "f": i, "l": i, "T": t, "m": False, "M": True}  # fmt: skip
            out.append(json.dumps({"stream": "btcusdt@aggTrade", "data": data}).encode())
    return out


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def committed(bootstrap: str, topic: str, n: int, timeout: float) -> list[Any]:
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_name("hfc"),
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed"})  # fmt: skip
    c.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                out.append(CODEC.decode(m.value()) if m.value()[:1] == b"\x00" else m)
    finally:
        c.close()
    return out


def test_registry_outage_mid_stream_back_pressures_then_completes(
    kafka_bootstrap: str, schema_registry_url: str, tmp_path: Path
) -> None:
    from urllib.parse import urlsplit

    u = urlsplit(schema_registry_url)
    proxy = TcpProxy((u.hostname or "127.0.0.1", u.port or 80))
    proxy.start()
    prefix, mport = unique_name("hfr") + ".", free_port()
    env = {**os.environ, "SCHEMA_REGISTRY_URL": u._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()}
    argv = [sys.executable, "-m", "tickwire.cli", "normalize", "--bootstrap", kafka_bootstrap, "--vendors",
            "binance", "--topic-prefix", prefix, "--create-topics", "--metrics-port", str(mport)]  # fmt: skip
    log = (tmp_path / "normalizer.log").open("wb")
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    p = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "linger.ms": 1})
    seq = 0

    def send(frames: list[bytes]) -> None:
        nonlocal seq
        for f in frames:
            seq += 1
            env = Envelope("binance", "ws", 1, seq, time.time_ns(), "json", "test")
            p.produce(prefix + "binance.raw", f, b"BTCUSDT", headers=env.to_headers())
        assert p.flush(20) == 0

    try:
        wait_for(lambda: readyz(mport)[0] == 200, 30, what="normalizer up")
        wait_for(lambda: prefix + "binance.raw" in p.list_topics(timeout=5).topics, 30, what="raw topic")
        send(binance_frames(3, "quote", 0))  # Quote's schema registered while the registry is up
        quotes = committed(kafka_bootstrap, prefix + "crypto_quotes_realtime", 3, 30)
        assert [q.bid_price for q in quotes] == [100_500_000_000, 101_500_000_000, 102_500_000_000]
        proxy.stop()  # the registry is gone; Trade's schema is not registered by this process yet
        send(binance_frames(5, "trade", 10))
        _, body = wait_for(lambda: (r := readyz(mport))[0] == 503 and r, 20, what="not ready")
        assert "ConnectError" in body["checks"]["outage"], body
        assert committed(kafka_bootstrap, prefix + "crypto_trades_realtime", 1, 2) == []
        proxy.start()
        trades = committed(kafka_bootstrap, prefix + "crypto_trades_realtime", 5, 30)
        assert all(isinstance(t, Trade) for t in trades)
        assert sorted(t.price for t in trades) == [
            (100 + i) * 1_000_000_000 + 250_000_000 for i in range(10, 15)
        ]
        assert committed(kafka_bootstrap, prefix + "binance.raw.dlq", 1, 2) == []  # nothing DLQ'd
        assert all(isinstance(q, Quote) for q in quotes)
        wait_for(lambda: readyz(mport)[0] == 200, 20, what="ready again")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        proxy.stop()
        log.close()


def test_redis_out_of_memory_refuses_the_whole_batch_then_dlqs_it(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    from tests.integration.test_bridge_helpers import private_redis

    port = free_port()
    proc = private_redis(port, tmp_path, tmp_path / "redis.log")
    try:
        url = f"redis://127.0.0.1:{port}/0"
        r: Any = redis.Redis.from_url(url)
        r.config_set("maxmemory-policy", "noeviction")
        r.config_set("maxmemory", str(r.info("memory")["used_memory"] + 64 * 1024))
        with contextlib.suppress(redis.exceptions.ResponseError):  # fill it up to the limit
            for i in range(10_000):
                r.set(f"ballast:{i}", b"x" * 1024)
        prefix = unique_name("hfo") + "."
        create_topics(kafka_bootstrap, [prefix + "bridge.redis.dlq"])
        s = RedisBridgeSettings(
            redis_url=url, kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=prefix,
            permanent_error_attempts=2, control_plane=False,
        )  # fmt: skip
        loop = BridgeLoop(s, "redis", RedisWriter(s))
        batch = [Msg(prefix + "stock_trades_realtime", i, trade(i)) for i in range(3)]

        async def run() -> int:
            try:
                return await handle_until_done(loop, batch, 5)
            finally:
                await loop.close()

        assert asyncio.run(run()) == 1
        assert (
            r.exists("market:AAPL:trades", f"tickwire:bridge:{s.full_app_id}:offsets") == 0
        )  # nothing half-written
        dlq = consume_all(kafka_bootstrap, prefix + "bridge.redis.dlq", 3, timeout=20)
        assert sorted(CODEC.decode(m.value()).seq for m in dlq) == [1, 2, 3]
        assert all(dict(m.headers())[H_ERROR_MESSAGE].startswith(b"OOM") for m in dlq)
    finally:
        proc.stop()
