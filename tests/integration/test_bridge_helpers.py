"""Shared helpers of the bridge integration tests (no tests here): records, Kafka I/O, bridge processes,
and private redis-server / nats-server instances for outage tests (never the shared ones)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.helpers import wait_for
from tickwire.contract.codec import Codec
from tickwire.contract.exact import parse_units as u
from tickwire.contract.records import Bar, BookUpdate, Level, Quote, Trade
from tickwire.contract.routing import key_for, topic_for

T0 = 1_704_205_800_000_000_000  # 2024-01-02T14:30:00Z
SESSION = 1_700_000_000_000_000_000
REPO = Path(__file__).resolve().parents[2]
TICKWIRE = str(Path(sys.executable).with_name("tickwire"))


def trade(
    i: int, symbol: str = "AAPL", asset: str = "equity", stream: str = "stocks.iex", **kw: Any
) -> Trade:
    d: dict[str, Any] = dict(
        symbol=symbol,
        asset_class=asset,
        source="alpaca",
        stream=stream,
        session=SESSION,
        seq=i + 1,
        ts_event=T0 + i * 1_000_000,
        ts_recv=T0 + i * 1_000_000 + 500,
        price=u("100") + i * u("0.01"),
        size=u("10") + i,
        venue="V",
        side="buy",
        side_rule="vendor",
    )
    d.update(kw)
    return Trade(**d)


def quote(i: int, symbol: str = "AAPL", asset: str = "equity") -> Quote:
    return Quote(
        symbol=symbol,
        asset_class=asset,  # type: ignore[arg-type]
        source="alpaca",
        stream="stocks.iex",
        session=SESSION,
        seq=10_000 + i,
        ts_event=T0 + i * 1_000_000,
        ts_recv=T0 + i * 1_000_000 + 500,
        bid_price=u("99.99") + i * u("0.01"),
        bid_size=u("3"),
        ask_price=u("100.01") + i * u("0.01"),
        ask_size=u("4"),
    )


def bar(i: int, timeframe: str = "1m", symbol: str = "AAPL", correction: bool = False) -> Bar:
    step = 60 if timeframe == "1m" else 5
    return Bar(
        symbol=symbol,
        asset_class="equity",
        source="alpaca",
        stream="stocks.iex",
        session=SESSION,
        seq=20_000 + i + (1000 if correction else 0),
        ts_event=T0 + i * step * 1_000_000_000,
        ts_recv=T0 + (i + 1) * step * 1_000_000_000,
        timeframe=timeframe,  # type: ignore[arg-type]
        open=u("100"),
        high=u("101.5") + (u("1") if correction else 0),
        low=u("99.25"),
        close=u("100.75"),
        volume=u("1234.5") + i,
        correction=correction,
    )


def book(i: int, snapshot: bool, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> BookUpdate:
    return BookUpdate(
        symbol="BTC/USD",
        asset_class="crypto",
        source="binance",
        stream="depth",
        session=SESSION,
        seq=30_000 + i,
        ts_event=T0 + i * 1_000_000,
        ts_recv=T0 + i * 1_000_000 + 500,
        snapshot=snapshot,
        bids=tuple(Level(u(p), u(s)) for p, s in bids),
        asks=tuple(Level(u(p), u(s)) for p, s in asks),
    )


# ---- Kafka ----------------------------------------------------------------------------------------


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futs = admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names])
    for f in futs.values():
        f.result(30)


def produce(bootstrap: str, prefix: str, records: Iterable[Any], raw: list[tuple[str, bytes]] = ()) -> None:  # type: ignore[assignment]
    codec = Codec()
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    for r in records:
        p.produce(prefix + topic_for(r), value=codec.encode(r), key=key_for(r))
    for topic, value in raw:
        p.produce(prefix + topic, value=value, key=b"bad", headers=[("tw-source", b"test")])
    assert p.flush(30) == 0


def consume_all(bootstrap: str, topic: str, expect: int, timeout: float = 30.0) -> list[Any]:
    c = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"check-{time.time_ns()}", "enable.auto.commit": False}
    )
    c.assign([TopicPartition(topic, 0, 0)])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                out.append(m)
    finally:
        c.close()
    return out


# ---- processes ------------------------------------------------------------------------------------


class Proc:
    """A child process we started (bridge or private server); stopped by pid only."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.argv, self.log = argv, log
        self.env = {**os.environ, **(env or {})}
        self.p: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        fh = self.log.open("ab")
        self.p = subprocess.Popen(self.argv, stdout=fh, stderr=subprocess.STDOUT, env=self.env, cwd=REPO)
        fh.close()
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.p is None or self.p.poll() is not None:
            return
        self.p.send_signal(sig)
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(10)

    def alive(self) -> bool:
        return self.p is not None and self.p.poll() is None


def bridge_proc(target: str, args: list[str], log: Path, env: dict[str, str] | None = None) -> Proc:
    argv = [TICKWIRE, "bridge", target, *args]
    return Proc(argv, log, {"TICKWIRE_LOG_LEVEL": "INFO", **(env or {})})


def port_ready(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _binary(name: str) -> str:
    from tickwire.infra.process import find_binary

    path = find_binary(name)
    if path is None:
        pytest.skip(f"{name} not installed")
    return path


def private_redis(port: int, data_dir: Path, log: Path) -> Proc:
    """A redis-server of our own (AOF on, so a stop/start keeps the data as a real outage would)."""
    argv = [_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir)]
    argv += ["--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"]
    p = Proc(argv, log).start()
    wait_for(lambda: port_ready(port), 15, what="private redis")
    return p


def private_nats(port: int, store: Path, log: Path) -> Proc:
    argv = [_binary("nats-server"), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)]
    p = Proc(argv, log).start()
    wait_for(lambda: port_ready(port), 15, what="private nats")
    return p


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Every process a test starts goes here and is stopped at teardown, whatever happened."""
    started: list[Proc] = []
    yield started
    for p in reversed(started):
        p.stop(signal.SIGKILL if p.argv[0] == TICKWIRE else signal.SIGTERM, timeout=10)
