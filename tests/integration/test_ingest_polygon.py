"""Polygon/Massive producers against the simulator and a real Kafka broker.

Covers: byte-exact gap-free sessions, 20 forced drops (20 gap records, the whole option set resubscribed
each time), auth_failed -> exit 2 after one attempt (subprocess), max_connections -> the runner schedules
no reconnect for >= 60 s (observed at its backoff log and counter, no 60 s sleep).
"""

from __future__ import annotations

import json
import logging
import os
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
from websockets.sync.client import connect

from tests.helpers import consume_to_end, consume_until, wait_for
from tickwire.contract.adapter import Subs
from tickwire.contract.codec import Codec
from tickwire.contract.envelope import Envelope
from tickwire.ingest import cli, health
from tickwire.ingest.runner import Runner
from tickwire.vendors.polygon.adapter import PolygonAdapter
from tickwire.vendors.polygon.settings import PolygonSettings
from tickwire.vendors.polygon.simulator import PolygonSimulator

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def consume(
    bootstrap: str, topic: str, *, until: Callable[[list[Message]], bool], timeout: float
) -> list[Message]:
    return consume_until(bootstrap, topic, until, timeout)


def env_of(m: Message) -> Envelope:
    return Envelope.from_headers(m.headers())


def last_seq(runner: Runner, stream: str) -> int:
    return runner.seq(stream)


class Producer:
    """A producer process in a thread (cli.run), stoppable like SIGTERM would."""

    def __init__(
        self,
        settings: PolygonSettings,
        url: str,
        market: str,
        subs: Subs,
        on_runner: Callable[[Runner], None] | None = None,
    ) -> None:
        self.adapter = PolygonAdapter(settings, market=market, url=url)
        got: list[Runner] = []
        self.rc: int | None = None

        def hook(r: Runner) -> None:
            got.append(r)
            if on_runner is not None:
                on_runner(r)

        def target() -> None:
            self.rc = cli.run(settings, self.adapter, subs, on_runner=hook, install_signals=False)

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()
        wait_for(lambda: got, 30, what="runner")
        self.runner: Runner = got[0]

    def stop(self) -> None:
        self.runner.stop()
        self.thread.join(40)
        assert not self.thread.is_alive()


def settings(bootstrap: str, prefix: str, **kw: Any) -> PolygonSettings:
    base: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "topic_prefix": prefix,
        "metrics_port": 0,
        "api_key": "good-key",
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.3,
        "heartbeat_interval_s": 1.0,
    }
    base.update(kw)
    return PolygonSettings.load(**base)


@pytest.fixture
def prefix() -> str:
    return f"itpg{uuid.uuid4().hex[:10]}."


@pytest.fixture
def manual_sim() -> Iterator[PolygonSimulator]:
    sim = PolygonSimulator(mode="manual", rate=0, symbols=["SPY", "AAPL"], seed=7, credentials={"good-key"})
    sim.start()
    yield sim
    sim.stop()


def test_session_is_byte_exact_gap_free_and_keyed(
    kafka_bootstrap: str, prefix: str, manual_sim: PolygonSimulator
) -> None:
    sim = manual_sim
    subs = {"T": frozenset({"SPY", "AAPL"}), "Q": frozenset({"SPY"})}
    p = Producer(settings(kafka_bootstrap, prefix), sim.url + "/stocks", "stocks", subs)
    wait_for(
        lambda: sim.active() and sim.active()[0].subscriptions == {"T.SPY", "T.AAPL", "Q.SPY"},
        20,
        what="subs",
    )
    for i in range(200):  # single-ticker and mixed frames
        sim.publish(sim.make_events(1) if i % 4 else [sim.trade("SPY"), sim.quote("SPY"), sim.trade("AAPL")])
    sent = [f for c in sim.connections for f in c.sent]
    wait_for(lambda: last_seq(p.runner, "stocks") >= len(sent), 20, what="all frames read")
    p.stop()
    assert p.rc == 0
    msgs = consume(kafka_bootstrap, prefix + "polygon.raw", until=lambda o: len(o) >= len(sent), timeout=30)
    by_seq = sorted(msgs, key=lambda m: env_of(m).seq)
    assert [env_of(m).seq for m in by_seq] == list(range(1, len(sent) + 1))  # gap-free, no duplicates
    assert [m.value() for m in by_seq] == sent  # byte-identical, vendor order, statuses included
    assert {(e.source, e.stream, e.content_type) for e in map(env_of, msgs)} == {
        ("polygon", "stocks", "json")
    }
    mixed = [m for m in by_seq if m.value().count(b'"ev":') > 1 and b'"AAPL"' in m.value()]
    assert mixed and {m.key() for m in mixed} == {b"stocks"}  # several tickers: keyed by stream
    assert {
        m.key()
        for m in by_seq
        if m.value().count(b'"ev":"T","sym":"SPY"') == 1 and m.value().count(b'"ev":') == 1
    } == {b"SPY"}


def test_twenty_drops_twenty_gaps_and_whole_option_set_resubscribed(
    kafka_bootstrap: str, prefix: str
) -> None:
    sim = PolygonSimulator(rate=150, symbols=["SPY"], seed=3, credentials={"good-key"})
    sim.start()
    contracts = frozenset(c[0] for c in sim.contracts[:40])  # 40 option contracts
    want = {f"T.{t}" for t in contracts} | {f"Q.{t}" for t in contracts}
    try:
        s = settings(kafka_bootstrap, prefix, strikes=False, subscriptions_live=False)
        p = Producer(s, sim.url + "/options", "options", {"T": contracts, "Q": contracts})
        for i in range(20):
            seq0 = last_seq(p.runner, "options")
            wait_for(
                lambda seq0=seq0: p.runner.ready.is_set() and last_seq(p.runner, "options") > seq0 + 5,
                20,
                what=f"data on connection {i + 1}",
            )
            sim.inject("drop")
        wait_for(lambda: p.runner.connections == 21 and p.runner.ready.is_set(), 20, what="21st connection")
        seq0 = last_seq(p.runner, "options")
        wait_for(lambda: last_seq(p.runner, "options") > seq0 + 5, 20, what="data after the last drop")
        total = last_seq(p.runner, "options")
        p.stop()
    finally:
        sim.stop()
    assert len(sim.connections) == 21
    for c in sim.connections:  # every connection: the whole set, subscribed by the runner itself
        subscribed = {x for action, params in c.state["actions"] if action == "subscribe" for x in params}
        assert subscribed == want
    gap_msgs = consume_to_end(kafka_bootstrap, prefix + "tickwire.gaps")  # stopped and flushed: all there
    gaps = [Codec().decode(m.value()) for m in gap_msgs]
    assert len(gaps) == 20
    assert all(
        g.reason == "reconnect" and g.detected_by == "producer" and g.stream == "options" for g in gaps
    )
    assert all(g.first_seq_after == g.last_seq_before + 1 for g in gaps)
    raw = consume(kafka_bootstrap, prefix + "polygon.raw", until=lambda o: len(o) >= total, timeout=30)
    assert sorted(env_of(m).seq for m in raw) == list(range(1, total + 1))


def test_auth_failed_exits_2_after_one_attempt(
    kafka_bootstrap: str, prefix: str, manual_sim: PolygonSimulator
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLYGON_", "MASSIVE_"))}
    env |= {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "POLYGON_API_KEY": "bad-key-s3cret"}
    argv = [sys.executable, "-m", "tickwire.cli", "ingest", "polygon", "--market", "stocks"]
    argv += ["--url", manual_sim.url + "/stocks", "--topic-prefix", prefix, "--metrics-port", "0"]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "authentication rejected" in proc.stderr and "auth_failed" in proc.stderr
    assert "bad-key-s3cret" not in proc.stderr + proc.stdout  # the secret is never logged
    assert len(manual_sim.connections) == 1  # no retry storm


def test_missing_key_for_the_real_endpoint_fails_fast() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLYGON_", "MASSIVE_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "tickwire.cli", "ingest", "polygon"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 2 and "POLYGON_API_KEY" in proc.stderr


def test_max_connections_backs_off_at_least_60s(
    kafka_bootstrap: str, prefix: str, manual_sim: PolygonSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim = manual_sim
    p = Producer(
        settings(kafka_bootstrap, prefix, subscriptions_live=False),
        sim.url + "/stocks",
        "stocks",
        {"T": frozenset({"SPY"})},
    )
    wait_for(p.runner.ready.is_set, 20, what="subscribed")
    before = health.counter_total(health.RECONNECTS, source="polygon", stream="stocks", reason="vendor")
    caplog.set_level(logging.INFO, logger="tickwire.ingest.runner")
    with connect(sim.url + "/stocks") as other:  # a second client with the same key on the same cluster
        other.recv(5)
        other.send(json.dumps({"action": "auth", "params": "good-key"}))
        assert json.loads(other.recv(5))[0]["status"] == "auth_success"

        def delays() -> list[float]:
            return [
                float(m.split("delay=")[1].split()[0])
                for m in caplog.messages
                if m.startswith("reconnecting")
            ]

        assert (
            wait_for(delays, 10, what="reconnect scheduled")[-1] >= 60.0
        )  # the wait before the next attempt
        reconnects = health.counter_total(
            health.RECONNECTS, source="polygon", stream="stocks", reason="vendor"
        )
        assert reconnects == before + 1
        time.sleep(2)
        assert p.runner.connections == 1 and len(sim.connections) == 2  # nothing retried meanwhile
    assert any("max_connections" in m for m in caplog.messages)
    p.stop()  # stop() ends the wait at once
    assert p.rc == 0 and len(sim.connections) == 2
