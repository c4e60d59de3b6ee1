"""The FIX 4.4 producer against a real FIX engine: a QuickFIX/J 2.3.2 acceptor with UseDataDictionary=Y.

One LP process serves the whole module; each test has its own initiator CompID (its own FIX session on
the LP), its own topic prefix and its own sequence store.
"""

from __future__ import annotations

import json
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
from prometheus_client import REGISTRY

from tests.helpers import consume_until, wait_for
from tickwire.contract.codec import Codec
from tickwire.contract.envelope import Envelope
from tickwire.ingest import cli
from tickwire.ingest.runner import Runner
from tickwire.ingest.subscriptions import main as subscriptions_main
from tickwire.vendors.fix.adapter import FixAdapter
from tickwire.vendors.fix.lp import LpProcess
from tickwire.vendors.fix.settings import FixSettings

pytestmark = pytest.mark.integration

SYMS = ("EUR/USD", "GBP/USD", "USD/JPY")
TARGETS = [f"T{i}" for i in range(1, 10)]


@pytest.fixture(scope="module")
def lp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LpProcess]:
    log = tmp_path_factory.mktemp("lp") / "lp.log"
    with LpProcess(targets=TARGETS, rate=20, log_file=log) as p:
        yield p


class Producer:
    """``tickwire ingest fix`` in a thread (the same ``cli.run`` the command uses)."""

    def __init__(self, bootstrap: str, lp: LpProcess, target: str, store: Path, **kw: Any) -> None:
        self.prefix = f"it{uuid.uuid4().hex[:10]}." if "topic_prefix" not in kw else kw.pop("topic_prefix")
        self.skip = kw.pop("skip", 0)  # records of an earlier producer on the same topic
        opts: dict[str, Any] = {
            "kafka_bootstrap_servers": bootstrap,
            "topic_prefix": self.prefix,
            "session": f"s-{target}",
            "sender_comp_id": target,
            "target_comp_id": "LP_ALPHA",
            "store_dir": store,
            "symbols": SYMS,
            "metrics_port": 0,
            "heartbeat_interval_s": 1.0,
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.3,
            "subscriptions_live": False,
            **kw,
        }
        self.s = FixSettings.load(**opts)
        self.adapter = FixAdapter(self.s, url=lp.url)
        got: list[Runner] = []
        self.thread = threading.Thread(
            target=cli.run,
            args=(self.s, self.adapter, {self.s.session: frozenset(self.s.symbols)}),
            kwargs={"on_runner": got.append, "install_signals": False},
            daemon=True,
        )
        self.thread.start()
        wait_for(lambda: got, 30, what="runner")
        self.runner: Runner = got[0]

    def published(self) -> int:
        return self.runner.seq(self.s.session)

    def stop(self) -> None:
        self.runner.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()


def consume(bootstrap: str, topic: str, n: int, timeout: float = 30) -> list[Message]:
    return consume_until(bootstrap, topic, lambda out: len(out) >= n, timeout)


def raw_records(bootstrap: str, p: Producer) -> list[tuple[Envelope, int, Message]]:
    """fix.raw of one producer: (envelope, FIX MsgSeqNum, message) in publishing order."""
    msgs = consume(bootstrap, p.prefix + "fix.raw", p.published() + p.skip)
    rows = [(Envelope.from_headers(m.headers()), int(dict(m.headers())["tw-vendor-seq"]), m) for m in msgs]
    rows = [r for r in rows if r[0].session == p.runner.session]
    rows.sort(key=lambda r: r[0].seq)
    assert [e.seq for e, _, _ in rows] == list(range(1, len(rows) + 1))  # gap-free, nothing lost
    return rows


def logged_out(lp: LpProcess, target: str) -> dict[str, Any]:
    """The LP's status once its side of a logout is done (the engine finishes it on its own threads)."""

    def done() -> dict[str, Any] | None:
        st = lp.status(target)
        return st if not st["logged_on"] and st["admin_out"].get("5") else None

    return wait_for(done, 10, what=f"{target} logged out") or {}


def field(raw: bytes, tag: int) -> str | None:
    for f in raw.split(b"\x01"):
        t, _, v = f.partition(b"=")
        if t == str(tag).encode():
            return v.decode()
    return None


def test_logon_three_symbols_w_then_x_byte_exact(kafka_bootstrap: str, lp: LpProcess, tmp_path: Path) -> None:
    p = Producer(kafka_bootstrap, lp, "T1", tmp_path, entry_types=("0", "1", "2"))
    wait_for(lambda: p.published() >= 40, 20, what="W and X messages")
    p.stop()
    st = lp.status("T1")
    assert st["logons"] == 1 and st["admin_out"].get("3") is None  # every V passed the data dictionary
    ids = {sub: f"s-T1-{i}" for i, sub in enumerate(SYMS, 1)}
    assert [x.split(":")[1:] for x in st["sub_log"]] == [[ids[s], "1", s] for s in SYMS]
    rows = raw_records(kafka_bootstrap, p)
    sent = {int(field(m, 34) or 0): m for m in lp.sent("T1", 1, st["next_out"] - 1)}
    for env, vseq, m in rows:
        assert m.value() == sent[vseq]  # the bytes exactly as the engine sent them
        assert (env.source, env.stream, env.content_type) == ("fix", "s-T1", "fix")
        assert env.ts_recv > 0
    vseqs = [v for _, v, _ in rows]
    assert vseqs == sorted(set(vseqs))  # in order, no duplicates
    types = [field(m.value(), 35) for _, _, m in rows]
    assert types[0] == "A"
    for sym, md in ids.items():
        mine = [(field(m.value(), 35), m.key()) for _, _, m in rows if field(m.value(), 262) == md]
        assert mine[0] == ("W", md.encode()) and {t for t, _ in mine[1:]} == {"X"}
        assert field(next(m.value() for _, _, m in rows if field(m.value(), 262) == md), 55) == sym
    assert types.count("X") >= 20


def test_unknown_symbol_is_rejected_and_the_session_stays_up(
    kafka_bootstrap: str, lp: LpProcess, tmp_path: Path
) -> None:
    p = Producer(kafka_bootstrap, lp, "T2", tmp_path, symbols=("EUR/USD", "BAD/SYM"))
    try:
        wait_for(lambda: p.adapter.rejects == 1, 15, what="the Y")
        mark = p.published()
        wait_for(lambda: p.published() > mark + 10, 15, what="data after the reject")
        st = lp.status("T2")
        assert st["rejects_y"] == 1 and st["logged_on"] and st["logons"] == 1
        assert p.runner.connections == 1 and list(st["subs"]) == ["s-T2-1"]
        labels = {"source": "fix", "stream": "s-T2", "field": "rejects"}
        wait_for(lambda: REGISTRY.get_sample_value("tickwire_ingest_session", labels) == 1, 5, what="gauge")
        up = {**labels, "field": "logged_on"}
        assert REGISTRY.get_sample_value("tickwire_ingest_session", up) == 1
    finally:
        p.stop()
    ys = [m.value() for _, _, m in raw_records(kafka_bootstrap, p) if field(m.value(), 35) == "Y"]
    assert len(ys) == 1 and field(ys[0], 281) == "0" and field(ys[0], 262) == "s-T2-2"


def test_seq_gap_resend_request_gap_filled_and_possdup_dropped(
    kafka_bootstrap: str, lp: LpProcess, tmp_path: Path
) -> None:
    p = Producer(kafka_bootstrap, lp, "T3", tmp_path)
    try:
        wait_for(lambda: p.published() >= 10, 15, what="data")
        lp.command("skip T3 7")
        wait_for(lambda: p.adapter.gaps == 1 and lp.status("T3")["admin_in"].get("2"), 15, what="resend")
        mark = p.published()
        wait_for(lambda: p.published() > mark + 10, 15, what="data after the gap fill")
        dup = lp.command("dup T3 5")
        assert dup["sent"] == 5
        mark = p.published()
        wait_for(lambda: p.published() > mark + 10, 15, what="data after the PossDup resend")
        assert p.runner.connections == 1 and p.adapter.session.stats.get("duplicates", 0) >= 5
        assert lp.status("T3")["admin_out"].get("3") is None  # our ResendRequest passed the dictionary
    finally:
        p.stop()
    rows = raw_records(kafka_bootstrap, p)
    vseqs = [v for _, v, _ in rows]
    assert vseqs == sorted(set(vseqs))  # every MsgSeqNum once: duplicates never reach fix.raw
    fills = [m.value() for _, _, m in rows if field(m.value(), 35) == "4"]
    assert fills and field(fills[0], 123) == "Y" and field(fills[0], 43) == "Y"
    assert all(field(m.value(), 43) is None for _, _, m in rows if field(m.value(), 35) in ("W", "X"))
    codec = Codec()
    gaps = [codec.decode(m.value()) for m in consume(kafka_bootstrap, p.prefix + "tickwire.gaps", 1)]
    assert [(g.reason, g.stream, g.detected_by) for g in gaps] == [("vendor_seq_jump", "s-T3", "producer")]
    assert gaps[0].first_seq_after - gaps[0].last_seq_before == 8


def test_silence_test_request_then_reconnect(kafka_bootstrap: str, lp: LpProcess, tmp_path: Path) -> None:
    p = Producer(kafka_bootstrap, lp, "T4", tmp_path, heartbeat_s=1)
    try:
        wait_for(lambda: p.published() >= 10, 15, what="data")
        lp.command("silent T4")
        # HeartBtInt is 1 s here: on a loaded machine a late heartbeat may cost one more reconnect.
        wait_for(lambda: p.runner.connections >= 2 and p.runner.ready.is_set(), 30, what="reconnect")
        assert p.adapter.session.stats.get("test_requests_sent", 0) >= 1
        assert p.adapter.session.stats.get("test_request_timeouts", 0) >= 1
        assert lp.status("T4")["admin_in"].get("1", 0) >= 1  # the engine received our TestRequest
        mark = p.published()
        wait_for(lambda: p.published() > mark + 10, 30, what="data after reconnect")
        assert lp.status("T4")["logons"] >= 2 and lp.status("T4")["admin_out"].get("3") is None
    finally:
        p.stop()


def test_restart_continues_both_sequence_numbers(kafka_bootstrap: str, lp: LpProcess, tmp_path: Path) -> None:
    p = Producer(kafka_bootstrap, lp, "T5", tmp_path)
    wait_for(lambda: p.published() >= 10, 15, what="data")
    p.stop()  # Logout and its confirm
    stored = json.loads((tmp_path / "s-T5.json").read_text())
    st = logged_out(lp, "T5")
    assert st["admin_in"].get("5") == 1
    assert (stored["next_out"], stored["next_in"]) == (st["next_in"], st["next_out"])
    assert stored["next_out"] > 5 and stored["next_in"] > 10
    q = Producer(kafka_bootstrap, lp, "T5", tmp_path, topic_prefix=p.prefix, skip=p.published())
    try:
        wait_for(lambda: q.published() >= 10, 15, what="data after restart")
        st2 = lp.status("T5")
        assert st2["logons"] == 2 and st2["logged_on"] and q.runner.connections == 1
        logon = next(m.value() for _, _, m in raw_records(kafka_bootstrap, q) if field(m.value(), 35) == "A")
        assert field(logon, 34) == str(stored["next_in"]) and field(logon, 141) is None  # no reset
        assert [x.split(":")[1] for x in st2["sub_log"]][3:] == ["s-T5-1", "s-T5-2", "s-T5-3"]
    finally:
        q.stop()


def test_twenty_forced_disconnects_resubscribe_with_original_ids(
    kafka_bootstrap: str, lp: LpProcess, tmp_path: Path
) -> None:
    p = Producer(kafka_bootstrap, lp, "T6", tmp_path)
    try:
        wait_for(lambda: lp.status("T6")["streams"] == 3, 15, what="3 subscriptions")
        for i in range(20):
            lp.command("drop T6" if i % 2 == 0 else "logout T6 forced logout")
            n = i + 2  # connections and LP logons so far

            def resubscribed(n: int = n) -> bool:
                st = lp.status("T6")
                mine = [e for e in st["sub_log"] if e.startswith(f"{n}:")]
                return p.runner.connections == n and st["logons"] == n and len(mine) == 3 and st["logged_on"]

            wait_for(resubscribed, 15, what=f"reconnect {i + 1}")
        st = lp.status("T6")
    finally:
        p.stop()
    assert st["logons"] == 21 and p.runner.reconnects == 20
    per_logon: dict[str, list[str]] = {}
    for entry in st["sub_log"]:
        logon, md, kind, _sym = entry.split(":")
        assert kind == "1"
        per_logon.setdefault(logon, []).append(md)
    assert len(per_logon) == 21
    assert all(sorted(ids) == ["s-T6-1", "s-T6-2", "s-T6-3"] for ids in per_logon.values())


def test_unsubscribe_is_accepted_by_the_validating_peer(
    kafka_bootstrap: str, lp: LpProcess, tmp_path: Path
) -> None:
    p = Producer(kafka_bootstrap, lp, "T7", tmp_path, subscriptions_live=True)
    try:
        wait_for(lambda: lp.status("T7")["streams"] == 3, 20, what="3 subscriptions")
        args = [
            "remove",
            "fix",
            "s-T7",
            "EUR/USD",
            "--bootstrap",
            kafka_bootstrap,
            "--topic-prefix",
            p.prefix,
        ]
        assert subscriptions_main(args) == 0
        wait_for(lambda: lp.status("T7")["unsubscribes"] == 1, 20, what="unsubscribe")
        st = lp.status("T7")
        assert st["admin_out"].get("3") is None and st["rejects_y"] == 0  # no Reject, no Y
        assert "1:s-T7-1:2:EUR/USD" in st["sub_log"]  # the original MDReqID, 263=2
        assert sorted(st["subs"]) == ["s-T7-2", "s-T7-3"] and p.runner.connections == 1
        args[0] = "add"  # live again: a fresh subscription gets a new MDReqID
        assert subscriptions_main([*args, "--topic-prefix", p.prefix]) == 0
        wait_for(lambda: "s-T7-4" in lp.status("T7")["subs"], 20, what="re-subscribe")
        assert lp.status("T7")["sub_log"][-1] == "1:s-T7-4:1:EUR/USD" and p.runner.connections == 1
    finally:
        p.stop()


def test_sigterm_logs_out_the_cli_producer(kafka_bootstrap: str, lp: LpProcess, tmp_path: Path) -> None:
    """``tickwire ingest fix --session NAME`` as a process: SIGTERM -> Logout, confirm, exit 0."""
    argv = [sys.executable, "-m", "tickwire.cli", "ingest", "fix", "--session", "cli", "--url", lp.url,
            "--sender", "T8", "--store-dir", str(tmp_path), "--bootstrap", kafka_bootstrap,
            "--topic-prefix", f"it{uuid.uuid4().hex[:10]}.",
            "--metrics-port", "0", "--no-control"]  # fmt: skip
    with (tmp_path / "ingest.log").open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: lp.status("T8")["streams"] == 3, 30, what="3 subscriptions")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    stored = json.loads((tmp_path / "cli.json").read_text())
    st = logged_out(lp, "T8")
    assert st["admin_in"].get("5") == 1  # our Logout, answered
    assert (stored["next_out"], stored["next_in"]) == (st["next_in"], st["next_out"])


def test_too_low_seq_without_possdup_is_logged_out_then_recovers(
    kafka_bootstrap: str, lp: LpProcess, tmp_path: Path
) -> None:
    p = Producer(kafka_bootstrap, lp, "T9", tmp_path)
    try:
        wait_for(lambda: p.published() >= 10, 15, what="data")
        lp.command("rewind T9 3")  # the engine reuses 3 numbers without PossDup
        wait_for(lambda: "MsgSeqNum too low" in lp.status("T9")["last_logout_in"], 30, what="our Logout")
        assert p.adapter.session.stats.get("protocol_errors", 0) >= 1
        wait_for(lambda: p.runner.connections >= 2 and len(lp.status("T9")["subs"]) == 3, 30, what="recovery")
        mark = p.published()
        wait_for(lambda: p.published() > mark + 10, 30, what="data after recovery")
    finally:
        p.stop()
    vseqs = [v for _, v, _ in raw_records(kafka_bootstrap, p)]
    assert vseqs == sorted(set(vseqs))  # the reused numbers were never published twice
