"""The IBKR producer against the TWS-protocol simulator, publishing to a real Kafka.

Each test has its own simulator (in process), client id and topic prefix. Expectations come from the
simulator's own logs: ``sent`` (every data/system message, fields as on the wire) and ``requests``
(every client request decoded).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message

from tests.helpers import consume_until, wait_for
from tests.integration.runtime_support import create_topics
from tickwire.contract.codec import Codec
from tickwire.contract.envelope import SESSION_END, Envelope
from tickwire.contract.records import Gap
from tickwire.ingest import cli
from tickwire.ingest.runner import Runner
from tickwire.vendors.ibkr.adapter import IbkrAdapter
from tickwire.vendors.ibkr.settings import IbkrSettings
from tickwire.vendors.ibkr.simulator import IbkrSimulator
from tickwire.vendors.ibkr.wire import SERVER_VERSION, fields_of

pytestmark = pytest.mark.integration

CANCEL_OF = {
    "reqMktDepth": "cancelMktDepth",
    "reqMktData": "cancelMktData",
    "reqTickByTickData": "cancelTickByTickData",
    "reqRealTimeBars": "cancelRealTimeBars",
}


@pytest.fixture
def sim() -> Iterator[IbkrSimulator]:
    s = IbkrSimulator(seed=7, rate=20, speed=20, depth_rows=4)
    s.start()
    yield s
    s.stop()


def _prefix(bootstrap: str) -> str:
    prefix = f"it{uuid.uuid4().hex[:10]}."
    create_topics(bootstrap, {prefix + "ibkr.raw": 2, prefix + "tickwire.gaps": 1})
    return prefix


class Producer:
    """``tickwire ingest ibkr`` in a thread (the same ``cli.run`` the command uses)."""

    def __init__(self, bootstrap: str, sim: IbkrSimulator, client_id: int, **kw: Any) -> None:
        self.prefix = _prefix(bootstrap)
        opts: dict[str, Any] = {
            "kafka_bootstrap_servers": bootstrap,
            "topic_prefix": self.prefix,
            "client_id": client_id,
            "metrics_port": 0,
            "heartbeat_interval_s": 1.0,
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.3,
            "subscriptions_live": False,
            "linger_ms": 1,
            **kw,
        }
        self.s = IbkrSettings.load(**opts)
        self.adapter = IbkrAdapter(self.s, url=sim.url)
        subs = {"l2": frozenset(self.s.l2_symbols), "standard": frozenset(self.s.symbols)}
        got: list[Runner] = []
        self.rc: list[int] = []
        self.thread = threading.Thread(
            target=lambda: self.rc.append(
                cli.run(self.s, self.adapter, subs, on_runner=got.append, install_signals=False)
            ),
            daemon=True,
        )
        self.thread.start()
        wait_for(lambda: got, 30, what="runner")
        self.runner: Runner = got[0]

    def stop(self) -> None:
        self.runner.stop()
        self.thread.join(20)
        assert not self.thread.is_alive()


def consume(bootstrap: str, topic: str, until: Any, timeout: float = 15) -> list[Message]:
    return consume_until(bootstrap, topic, until, timeout)


def raw(bootstrap: str, p: Producer) -> list[tuple[Envelope, Message]]:
    """ibkr.raw of one producer in seq order, broadcast copies folded (one per seq)."""
    want = p.runner.seq(p.adapter.stream)
    msgs = consume(bootstrap, p.prefix + "ibkr.raw", lambda out: len({_seq(m) for m in out}) >= want)
    by_seq: dict[int, tuple[Envelope, Message]] = {}
    for m in msgs:
        env = Envelope.from_headers(m.headers())
        by_seq.setdefault(env.seq, (env, m))
    rows = [by_seq[k] for k in sorted(by_seq)]
    assert [e.seq for e, _ in rows] == list(range(1, want + 1))
    # A cleanly stopped session ends with its end-of-session marker (empty, on every partition), never
    # anywhere else: the vendor's messages are the rows before it.
    ends = [i for i, (e, _) in enumerate(rows) if e.context_map().get("kind") == SESSION_END]
    assert ends in ([], [len(rows) - 1])
    if ends:
        env, m = rows.pop()
        assert (m.value() or b"", env.content_type) == (b"", "text")
    return rows


def _seq(m: Message) -> int:
    return Envelope.from_headers(m.headers()).seq


def requested(sim: IbkrSimulator, client_id: int, op: str | None = None) -> list[dict[str, Any]]:
    return [r for r in sim.requests() if r["client_id"] == client_id and (op is None or r["op"] == op)]


def subs_of(reqs: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return sorted((r["op"], r["symbol"], r["exchange"], r["detail"]) for r in reqs if r["op"] in CANCEL_OF)


def test_records_equal_sent_log_and_2152_falls_back_for_that_exchange(
    kafka_bootstrap: str, sim: IbkrSimulator
) -> None:
    p = Producer(
        kafka_bootstrap, sim, 11, l2_symbols=("SPY",), l2_exchanges=("ARCA", "ISLAND"), symbols=("AAPL",)
    )
    wait_for(lambda: len([e for e in sim.sent() if e["kind"] == "bars5s"]) >= 4, 10, what="bars")
    sim.command("no_depth", exchange="ISLAND")
    wait_for(lambda: [e for e in sim.sent() if e["kind"] == "top"], 10, what="top of book ticks")
    p.stop()
    tops = requested(sim, 11, "reqMktData")
    assert [(r["symbol"], r["exchange"]) for r in tops] == [("SPY", "ISLAND")]  # that exchange only
    cancelled = requested(sim, 11, "cancelMktDepth")
    island = [r for r in requested(sim, 11, "reqMktDepth") if r["exchange"] == "ISLAND"]
    assert cancelled[0]["req_id"] == island[0]["req_id"]
    rows = raw(kafka_bootstrap, p)
    sent = [e for e in sim.sent() if e["client_id"] == 11]
    assert len(rows) > 50 and len(sent) >= len(rows)
    kinds = set()
    for (env, m), e in zip(rows, sent, strict=False):
        assert fields_of(m.value()) == e["fields"]  # the payload is the message as sent, byte for byte
        ctx = env.context_map()
        assert list(ctx) == ["server_version", "req_id", "symbol", "exchange", "kind"]
        assert ctx == {
            "server_version": str(SERVER_VERSION),
            "req_id": str(e["req_id"]),
            "symbol": e["symbol"],
            "exchange": e["exchange"],
            "kind": e["kind"],
        }
        assert (env.source, env.stream, env.content_type) == ("ibkr", "tws.11", "tws")
        assert m.key() == (e["symbol"] or "tws.11").encode()
        kinds.add(e["kind"])
    assert kinds == {"depth", "top", "tbt_last", "tbt_bidask", "bars5s", "system"}
    notice = next(e for e in sent if e["values"].get("code") == 2152)
    assert (notice["symbol"], notice["exchange"]) == ("SPY", "ISLAND")


def test_309_on_the_4th_depth_symbol_falls_back(kafka_bootstrap: str, sim: IbkrSimulator) -> None:
    sim.command("depth_limit", n=3)
    p = Producer(kafka_bootstrap, sim, 12, l2_symbols=(), symbols=("AAPL", "MSFT", "NVDA", "TSLA"))
    wait_for(lambda: requested(sim, 12, "reqMktData"), 10, what="fallback request")
    wait_for(lambda: [e for e in sim.sent() if e["kind"] == "top" and e["client_id"] == 12], 10, what="tops")
    tsla = {r["req_id"]: CANCEL_OF[r["op"]] for r in requested(sim, 12) if r["symbol"] == "TSLA"}
    tsla = {k: v for k, v in tsla.items() if k in next(s for s in sim.sessions if s.client_id == 12).subs}
    p.runner.set_desired("standard", frozenset({"AAPL", "MSFT", "NVDA"}))  # a live change: TSLA goes
    wait_for(
        lambda: {r["req_id"]: r["op"] for r in requested(sim, 12) if r["op"].startswith("cancel")} == tsla, 10
    )
    p.stop()
    depth = requested(sim, 12, "reqMktDepth")
    assert [r["symbol"] for r in depth] == ["AAPL", "MSFT", "NVDA", "TSLA"]
    refused = next(e for e in sim.sent() if e["values"].get("code") == 309)
    assert refused["req_id"] == depth[3]["req_id"]
    assert [(r["symbol"], r["exchange"]) for r in requested(sim, 12, "reqMktData")] == [("TSLA", "SMART")]


def gaps(bootstrap: str, p: Producer, n: int) -> list[Gap]:
    codec = Codec(None)
    msgs = consume(bootstrap, p.prefix + "tickwire.gaps", lambda out: len(out) >= n)
    out = [codec.decode(m.value()) for m in msgs]
    assert all(isinstance(g, Gap) for g in out)
    return out


def test_1101_and_2103_2104_resubscribe_everything_with_gaps(
    kafka_bootstrap: str, sim: IbkrSimulator
) -> None:
    p = Producer(
        kafka_bootstrap, sim, 13, l2_symbols=("QQQ",), l2_exchanges=("ARCA", "BATS"), symbols=("IWM",)
    )
    wait_for(lambda: len(subs_of(requested(sim, 13))) == 9, 10, what="subscriptions")
    first = subs_of(requested(sim, 13))
    sim.command("connectivity", restore="1102", seconds=0.1)  # data maintained: nothing to do
    wait_for(lambda: [e for e in sim.sent() if e["values"].get("code") == 1102], 5, what="1102")
    sim.command("connectivity", restore="1101", seconds=0.2)
    wait_for(lambda: subs_of(requested(sim, 13)) == sorted(first * 2), 10, what="resubscribed after 1101")
    assert not [r for r in requested(sim, 13) if r["op"].startswith("cancel")]  # 1101: nothing left to cancel
    live = {r["req_id"] for r in [x for x in requested(sim, 13) if x["op"] in CANCEL_OF][-9:]}
    sim.command("farm", seconds=0.2)
    wait_for(lambda: subs_of(requested(sim, 13)) == sorted(first * 3), 10, what="resubscribed after 2104")
    assert {r["req_id"] for r in requested(sim, 13) if r["op"].startswith("cancel")} == live
    wait_for(lambda: [e for e in sim.sent()[-5:] if e["client_id"] == 13 and e["kind"] != "system"], 10)
    sim.command("drop")  # TWS itself goes away: the runner reconnects and subscribes everything again
    wait_for(lambda: len({s.id for s in sim.sessions if s.client_id == 13}) == 2, 10, what="reconnected")
    wait_for(
        lambda: subs_of(requested(sim, 13)) == sorted(first * 4), 10, what="resubscribed after reconnect"
    )
    p.stop()
    got = gaps(kafka_bootstrap, p, 3)
    assert [(g.source, g.stream, g.detected_by) for g in got] == [("ibkr", "tws.13", "producer")] * 3
    assert "1101" in got[0].detail and "2104" in got[1].detail and got[2].reason == "reconnect"
    assert all(g.ts_start <= g.ts_end for g in got)


def test_pacing_violation_is_asked_again_and_326_exits(
    kafka_bootstrap: str, sim: IbkrSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim.command("rtb_limit", n=1, window_s=600)
    p = Producer(kafka_bootstrap, sim, 14, l2_symbols=(), symbols=("AAPL", "MSFT"), pacing_retry_s=0.3)
    wait_for(lambda: len(requested(sim, 14, "reqRealTimeBars")) >= 3, 10, what="bars asked again")
    p.stop()
    bars = requested(sim, 14, "reqRealTimeBars")
    assert [r["symbol"] for r in bars[:3]] == ["AAPL", "MSFT", "MSFT"]
    sim.command("client_id_in_use", client_id=15)
    q = Producer(kafka_bootstrap, sim, 15, symbols=("AAPL",))
    q.thread.join(10)
    assert q.rc == [2]
    assert "TWS client id 15 is already in use (error 326)" in caplog.text
    assert not requested(sim, 15, "reqMktDepth")


def test_sigterm_cancels_every_subscription(kafka_bootstrap: str, sim: IbkrSimulator, tmp_path: Path) -> None:
    prefix = _prefix(kafka_bootstrap)
    argv = [
        sys.executable,
        "-m",
        "tickwire.cli",
        "ingest",
        "ibkr",
        "--url",
        sim.url,
        "--client-id",
        "16",
        "--l2-symbols",
        "SPY",
        "--l2-exchanges",
        "ARCA,IEX",
        "--symbols",
        "MSFT",
        "--topic-prefix",
        prefix,
        "--bootstrap",
        kafka_bootstrap,
        "--no-control",
        "--metrics-port",
        "0",
    ]
    env = {**os.environ, "IBKR_HEARTBEAT_INTERVAL_S": "1"}
    with (tmp_path / "ingest.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for(lambda: len(subs_of(requested(sim, 16))) == 9, 20, what="subscriptions")
            wait_for(lambda: [e for e in sim.sent() if e["client_id"] == 16 and e["kind"] == "bars5s"], 10)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    reqs = requested(sim, 16)
    made = {r["req_id"]: r["op"] for r in reqs if r["op"] in CANCEL_OF}
    cancels = {r["req_id"]: r["op"] for r in reqs if r["op"].startswith("cancel")}
    assert cancels == {rid: CANCEL_OF[op] for rid, op in made.items()}
    assert not [s for s in sim.sessions if s.client_id == 16 and s.open]
