"""Alpaca producer against the Alpaca simulator and a real Kafka broker.

Covers: byte-exact complete sessions, reconnect storms with gap records, the staleness watchdog, auth
rejection as a subprocess, live subscription changes through the control topic, and a broker outage on a
private broker (the shared one is never stopped).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message

from tests.helpers import consume_to_end, consume_until
from tickwire.contract.codec import Codec
from tickwire.contract.envelope import Envelope
from tickwire.infra.process import free_port
from tickwire.ingest import cli, health
from tickwire.ingest.runner import Runner
from tickwire.ingest.subscriptions import main as subscriptions_main
from tickwire.vendors.alpaca.adapter import AlpacaAdapter
from tickwire.vendors.alpaca.settings import AlpacaSettings
from tickwire.vendors.alpaca.simulator import AlpacaSimulator

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


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


def consume(
    bootstrap: str, topic: str, *, until: Callable[[list[Message]], bool], timeout: float
) -> list[Message]:
    return consume_until(bootstrap, topic, until, timeout)


def env_of(m: Message) -> Envelope:
    return Envelope.from_headers(m.headers())


class Producer:
    """A producer process in a thread (cli.run), stoppable like SIGTERM would."""

    def __init__(self, settings: AlpacaSettings, url: str) -> None:
        self.adapter = AlpacaAdapter(settings, feed="stocks", url=url)
        subs = {t: frozenset(settings.symbols) for t in settings.stock_channels}
        got: list[Runner] = []
        self.rc: int | None = None

        def target() -> None:
            self.rc = cli.run(settings, self.adapter, subs, on_runner=got.append, install_signals=False)

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()
        self.runner: Runner = wait_for(lambda: got and got[0], 30, "runner")

    def stop(self) -> None:
        self.runner.stop()
        self.thread.join(40)
        assert not self.thread.is_alive()


def settings(bootstrap: str, prefix: str, **kw: Any) -> AlpacaSettings:
    base: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "topic_prefix": prefix,
        "metrics_port": 0,
        "api_key": "k",
        "secret_key": "s",
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.3,
        "heartbeat_interval_s": 1.0,
    }
    base.update(kw)
    return AlpacaSettings.load(**base)


@pytest.fixture
def prefix() -> str:
    return f"it{uuid.uuid4().hex[:10]}."


@pytest.fixture
def manual_sim() -> Iterator[AlpacaSimulator]:
    sim = AlpacaSimulator(mode="manual", symbols=["AAPL", "SPY", "MSFT"], seed=7)
    sim.start()
    yield sim
    sim.stop()


def sent_frames(sim: AlpacaSimulator) -> list[bytes]:
    return [f for c in sim.connections for f in c.sent]


def test_session_is_complete_byte_exact_and_in_order(
    bootstrap: str, prefix: str, manual_sim: AlpacaSimulator
) -> None:
    sim = manual_sim
    p = Producer(settings(bootstrap, prefix, symbols=("AAPL", "SPY")), sim.url + "/v2/iex")
    wait_for(p.runner.ready.is_set, 20, "subscribed")
    wait_for(lambda: any(b'"subscription"' in f for f in sent_frames(sim)), 10, "subscription ack")
    for i in range(300):
        sim.publish([sim.make_event("AAPL" if i % 3 else "SPY")])
    sent = sent_frames(sim)
    wait_for(lambda: p.runner.seq("stocks.iex") >= len(sent), 20, "all frames read")
    p.stop()
    assert p.rc == 0
    msgs = consume(bootstrap, prefix + "alpaca.raw", until=lambda o: len(o) >= len(sent), timeout=30)
    envs = [env_of(m) for m in msgs]
    by_seq = sorted(zip(envs, msgs, strict=True), key=lambda em: em[0].seq)
    assert [e.seq for e, _ in by_seq] == list(range(1, len(sent) + 1))  # gap-free, no duplicates
    assert [m.value() for _, m in by_seq] == sent  # byte-identical, vendor order
    assert {(e.source, e.stream, e.content_type, e.session) for e in envs} == {
        ("alpaca", "stocks.iex", "json", p.runner.session)
    }
    assert all(e.ts_recv > 0 and e.version for e in envs)
    keys = {m.key() for _, m in by_seq[-300:]}
    assert keys == {b"AAPL", b"SPY"}  # one-symbol frames are keyed by the symbol
    # a heartbeat reached the health topic
    hb = consume(bootstrap, prefix + "tickwire.health", until=lambda o: len(o) >= 1, timeout=15)
    beat = Codec().decode(hb[0].value())
    assert beat.component == "ingest.alpaca" and beat.stats["stream"] == "stocks.iex"


def test_twenty_drops_reconnect_resubscribe_and_emit_one_gap_each(bootstrap: str, prefix: str) -> None:
    sim = AlpacaSimulator(rate=100, symbols=["AAPL", "SPY"], seed=3)
    sim.start()
    try:
        p = Producer(settings(bootstrap, prefix, symbols=("AAPL", "SPY")), sim.url + "/v2/iex")
        for i in range(20):
            seq0 = p.runner.seq("stocks.iex")
            wait_for(
                lambda seq0=seq0: p.runner.ready.is_set() and p.runner.seq("stocks.iex") > seq0 + 5,
                20,
                f"data on connection {i + 1}",
            )
            sim.inject("drop")
        wait_for(lambda: p.runner.connections == 21 and p.runner.ready.is_set(), 20, "21st connection")
        seq0 = p.runner.seq("stocks.iex")
        wait_for(lambda: p.runner.seq("stocks.iex") > seq0 + 5, 20, "data after the last drop")
        total = p.runner.seq("stocks.iex")
        p.stop()
    finally:
        sim.stop()
    assert len(sim.connections) == 21
    # every connection was (re)subscribed to the full set
    assert all(c.subscriptions >= {"trades:AAPL", "trades:SPY", "bars:AAPL"} for c in sim.connections)
    gaps_msgs = consume_to_end(bootstrap, prefix + "tickwire.gaps")  # stopped and flushed: all there
    gaps = [Codec().decode(m.value()) for m in gaps_msgs]
    assert len(gaps) == 20
    assert all(g.reason == "reconnect" and g.detected_by == "producer" for g in gaps)
    assert all(g.first_seq_after == g.last_seq_before + 1 and g.ts_end >= g.ts_start for g in gaps)
    assert len({g.last_seq_before for g in gaps}) == 20
    raw = consume(bootstrap, prefix + "alpaca.raw", until=lambda o: len(o) >= total, timeout=30)
    assert sorted(env_of(m).seq for m in raw) == list(range(1, total + 1))


def test_mute_socket_is_reconnected_within_stale_after(bootstrap: str, prefix: str) -> None:
    sim = AlpacaSimulator(rate=50, symbols=["AAPL"], seed=5)
    sim.start()
    try:
        p = Producer(settings(bootstrap, prefix, symbols=("AAPL",), stale_after_s=1.5), sim.url + "/v2/iex")
        wait_for(lambda: p.runner.ready.is_set() and p.runner.last_data_ns, 20, "data")
        before = health.counter_total(health.STALE_RECONNECTS, source="alpaca", stream="stocks.iex")
        t0 = time.monotonic()
        sim.inject("mute", seconds=5, conn_id=sim.connections[-1].id)
        wait_for(lambda: p.runner.connections == 2, 10, "reconnect of the mute socket")
        elapsed = time.monotonic() - t0
        wait_for(lambda: p.runner.ready.is_set(), 10, "resubscribed")
        p.stop()
    finally:
        sim.stop()
    assert elapsed < 1.5 + 1.5
    assert health.counter_total(health.STALE_RECONNECTS, source="alpaca", stream="stocks.iex") == before + 1


def test_auth_rejection_exits_nonzero_after_one_attempt(bootstrap: str, prefix: str) -> None:
    sim = AlpacaSimulator(mode="manual", credentials={"good": "pw"})
    sim.start()
    try:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "ALPACA_API_KEY": "bad",
            "ALPACA_SECRET_KEY": "wrong",
        }
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "tickwire.cli",
                "ingest",
                "alpaca",
                "--url",
                sim.url + "/v2/iex",
                "--topic-prefix",
                prefix,
                "--metrics-port",
                "0",
                "--backoff-initial",
                "0.05",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
    finally:
        sim.stop()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "authentication rejected" in proc.stderr and "402" in proc.stderr
    assert len(sim.connections) == 1  # no retry storm


def test_missing_credentials_for_real_endpoint_fail_fast() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPACA_")}
    proc = subprocess.run(
        [sys.executable, "-m", "tickwire.cli", "ingest", "alpaca"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 2
    assert "ALPACA_API_KEY" in proc.stderr


def _frames_with(msgs: list[Message], needle: bytes) -> list[int]:
    return sorted(env_of(m).seq for m in msgs if needle in m.value())


def test_live_subscription_add_remove_and_restart(bootstrap: str, prefix: str) -> None:
    sim = AlpacaSimulator(rate=60, symbols=["AAPL", "MSFT"], seed=11)
    sim.start()
    try:
        s = settings(bootstrap, prefix, symbols=("AAPL",), stock_channels=("trades",))
        p = Producer(s, sim.url + "/v2/iex")
        wait_for(lambda: p.runner.ready.is_set(), 20, "subscribed")
        base = ["--bootstrap", bootstrap, "--topic-prefix", prefix]
        assert subscriptions_main(["add", "alpaca", "trades", "MSFT", *base]) == 0
        raw = prefix + "alpaca.raw"
        msft = b'"S":"MSFT"'
        consume(bootstrap, raw, until=lambda o: len(_frames_with(o, msft)) >= 3, timeout=20)
        assert p.runner.connections == 1 and len(sim.connections) == 1  # no reconnect for the change
        assert sim.connections[0].subscriptions == {"trades:AAPL", "trades:MSFT"}

        # restart: the new process resubscribes the stored set, not just its config default (AAPL)
        p.stop()
        p = Producer(s, sim.url + "/v2/iex")
        wait_for(lambda: p.runner.ready.is_set(), 20, "resubscribed after restart")
        wait_for(
            lambda: sim.connections[-1].subscriptions == {"trades:AAPL", "trades:MSFT"}, 10, "stored set"
        )
        session2 = p.runner.session

        assert subscriptions_main(["remove", "alpaca", "trades", "MSFT", *base]) == 0
        wait_for(lambda: sim.connections[-1].subscriptions == {"trades:AAPL"}, 15, "unsubscribed")
        seq_mark = p.runner.seq("stocks.iex")
        wait_for(lambda: p.runner.seq("stocks.iex") > seq_mark + 30, 20, "more data")
        assert p.runner.connections == 1 and len(sim.connections) == 2
        p.stop()
    finally:
        sim.stop()
    msgs = consume_to_end(bootstrap, raw)  # the producer stopped and flushed
    mine = [m for m in msgs if env_of(m).session == session2]
    acks = [env_of(m).seq for m in mine if b'"T":"subscription"' in m.value() and msft not in m.value()]
    assert acks, "unsubscribe ack missing"
    after_removal = [q for q in _frames_with(mine, msft) if q > acks[-1]]
    assert after_removal == []
    assert [q for q in _frames_with(mine, b'"S":"AAPL"') if q > acks[-1]]  # AAPL kept flowing


@pytest.mark.timeout(420)
def test_broker_outage_loses_nothing(prefix: str, manual_sim: AlpacaSimulator) -> None:
    from tickwire.infra.config import load_config
    from tickwire.infra.servers import Kafka

    cfg = load_config(kafka_port=free_port(), kafka_controller_port=free_port())
    kafka = Kafka(cfg)
    kafka.up()
    sim = manual_sim
    try:
        p = Producer(settings(cfg.kafka_bootstrap, prefix, symbols=("AAPL", "SPY")), sim.url + "/v2/iex")
        wait_for(p.runner.ready.is_set, 30, "subscribed")
        for _ in range(100):
            sim.publish([sim.make_event("AAPL")])
        raw = prefix + "alpaca.raw"
        wait_for(
            lambda: health.counter_total(health.DELIVERED, topic=raw) >= 100, 60, "deliveries before outage"
        )
        kafka.down()
        # 12 s: past librdkafka's reconnect backoff cap (10 s default), frames piling up in the local queue
        # (message.timeout.ms=0: they never expire, so a longer outage tests nothing more).
        outage_end = time.monotonic() + 12
        while time.monotonic() < outage_end:  # frames keep arriving while the broker is down
            sim.publish([sim.make_event("SPY")])
            time.sleep(0.1)
        kafka.up()
        for _ in range(100):
            sim.publish([sim.make_event("AAPL")])
        sent = sent_frames(sim)
        wait_for(lambda: p.runner.seq("stocks.iex") >= len(sent), 30, "all frames read")
        p.stop()  # flushes
        msgs = consume(
            cfg.kafka_bootstrap, prefix + "alpaca.raw", until=lambda o: len(o) >= len(sent), timeout=60
        )
        by_seq = sorted(msgs, key=lambda m: env_of(m).seq)
        assert [env_of(m).seq for m in by_seq] == list(range(1, len(sent) + 1))
        assert [m.value() for m in by_seq] == sent
    finally:
        kafka.down()
        shutil.rmtree(cfg.kafka_node_dir, ignore_errors=True)
