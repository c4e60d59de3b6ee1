"""Session markers of the REST poller and the DBN replay against the real local Kafka (issue 16, item 5).

The real processes (``tickwire ingest alphavantage`` against the in-process Alpha Vantage simulator, as
``test_ingest_alphavantage`` runs it; ``tickwire replay dbn`` on the shared DBN files) are SIGKILLed
mid-run and restarted: the new session's Gap on ``tickwire.gaps`` names the crashed session and the
highest seq of it actually on the raw topic. A clean stop (SIGTERM, end of files) is marked ``stopped``
and the next start reports nothing; a fatal producer error (exit 4, injected in-process into the real
producer as librdkafka's error callback reports it) is not marked ``stopped``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from pydantic import SecretStr

from tests.helpers import unique_name, wait_for
from tickwire import replay as replay_cli
from tickwire.contract.codec import Codec
from tickwire.contract.envelope import Envelope
from tickwire.contract.records import Gap, Heartbeat
from tickwire.ingest import producer, rest_run
from tickwire.ingest.producer import EXIT_FATAL
from tickwire.ingest.rest_poller import RestPoller
from tickwire.vendors.alphavantage.adapter import AlphaVantageAdapter
from tickwire.vendors.alphavantage.settings import AlphaVantageSettings
from tickwire.vendors.alphavantage.simulator import AlphaVantageSimulator
from tickwire.vendors.databento.replay import session_id

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SHARED = sorted((REPO.parent / "shared" / "data" / "dbn").glob("*.dbn*"))  # shared/ beside the checkout
AV_STREAMS = ["rest.realtime_options", "rest.rsi"]  # options + the RSI indicator of one symbol


def read_all(bootstrap: str, topic: str, timeout: float = 20.0) -> list[Message]:
    """Every record of ``topic`` up to its high watermarks now ([] while the topic does not exist)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None:
            return []
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in md.partitions}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        left = {p for p, hi in ends.items() if hi > 0}
        out: list[Message] = []

        def drained() -> bool:
            for m in c.consume(500, 0.2):
                if m.error() is None and (m.offset() or 0) < ends[m.partition() or 0]:
                    out.append(m)
                    if (m.offset() or 0) + 1 >= ends[m.partition() or 0]:
                        left.discard(m.partition() or 0)
            return not left

        wait_for(drained, timeout, interval=0, what=f"{topic} read to its end")
        return out
    finally:
        c.close()


def envs(msgs: list[Message]) -> list[Envelope]:
    return [Envelope.from_headers(m.headers()) for m in msgs]


def last_of(raw: list[Message], session: int, stream: str) -> tuple[int, int]:
    """(highest seq, its ts_recv) of ``session``'s ``stream`` among the raw records."""
    e = max((e for e in envs(raw) if (e.session, e.stream) == (session, stream)), key=lambda e: e.seq)
    return e.seq, e.ts_recv


def at_least(n: int, bootstrap: str, prefix: str, codec: Codec) -> list[Gap]:
    return g if len(g := gaps(bootstrap, prefix, codec)) >= n else []  # [] keeps wait_for polling


def gaps(bootstrap: str, prefix: str, codec: Codec) -> list[Gap]:
    out = [codec.decode(m.value()) for m in read_all(bootstrap, prefix + "tickwire.gaps")]
    assert all(isinstance(g, Gap) for g in out)
    return sorted(out, key=lambda g: g.stream)


def markers(bootstrap: str, prefix: str, codec: Codec) -> dict[str, Heartbeat]:
    """The latest session marker of every (source, stream) key."""
    msgs = read_all(bootstrap, prefix + "tickwire.sessions")
    return {(m.key() or b"").decode(): codec.decode(m.value()) for m in msgs}


def check_gap(g: Gap, source: str, stream: str, prev: int, last: tuple[int, int]) -> None:
    got = (g.source, g.stream, g.reason, g.detected_by, g.last_seq_before, g.first_seq_after, g.ts_start)
    assert got == (source, stream, "dropped", "producer", last[0], None, last[1])
    assert f"previous_session={prev} " in g.detail


@pytest.fixture
def codec(schema_registry_url: str) -> Codec:
    return Codec(schema_registry_url)


# ---- the REST poller ------------------------------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[AlphaVantageSimulator]:
    s = AlphaVantageSimulator(seed=3, limit=0)
    s.start()
    yield s
    s.stop()


class AvProcesses:
    """``tickwire ingest alphavantage`` processes of one test (stderr to files: a full pipe would block)."""

    def __init__(self, sim: AlphaVantageSimulator, bootstrap: str, prefix: str, registry: str, tmp: Path):
        self.sim, self.bootstrap, self.prefix, self.registry, self.tmp = sim, bootstrap, prefix, registry, tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ALPHAVANTAGE_")},
            "SCHEMA_REGISTRY_URL": self.registry,
            "ALPHAVANTAGE_API_KEY": "AVKEY-sessions",
            "ALPHAVANTAGE_SYMBOLS": "IBM",
            "ALPHAVANTAGE_DATA_TYPES": "options,technicals",
            "ALPHAVANTAGE_INDICATORS": "RSI",
            "ALPHAVANTAGE_OPTIONS_INTERVAL_S": "0.2",
            "ALPHAVANTAGE_TECHNICALS_INTERVAL_S": "0.3",
            "ALPHAVANTAGE_LINGER_MS": "1",
        }
        cmd = [sys.executable, "-m", "tickwire.cli", "ingest", "alphavantage"]
        cmd += ["--url", f"{self.sim.http_url}/query", "--bootstrap", self.bootstrap]
        cmd += ["--topic-prefix", self.prefix, "--no-control", "--metrics-port", "0"]
        with open(self.tmp / f"ingest-{len(self.procs)}.log", "wb") as err:
            p = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
        self.procs.append(p)
        return p

    def sigterm(self, p: subprocess.Popen[bytes]) -> None:
        p.send_signal(signal.SIGTERM)
        p.wait(30)
        log = (self.tmp / f"ingest-{self.procs.index(p)}.log").read_text()
        assert p.returncode == 0, log[-2000:]

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


def polled(bootstrap: str, raw_topic: str, n: int, not_sessions: set[int]) -> list[Message]:
    """The raw topic once a new session (none of ``not_sessions``) has >= n records on every stream."""
    raw = read_all(bootstrap, raw_topic)
    new = [e for e in envs(raw) if e.session not in not_sessions]
    if all(sum(1 for e in new if e.stream == s) >= n for s in AV_STREAMS):
        return raw
    return []


def test_rest_poller_sigkill_then_restart_emits_one_gap_per_stream_and_a_clean_stop_none(
    sim: AlphaVantageSimulator, kafka_bootstrap: str, schema_registry_url: str, codec: Codec, tmp_path: Path
) -> None:
    prefix = unique_name("sess") + "."
    raw_topic = prefix + "alphavantage.raw"
    procs = AvProcesses(sim, kafka_bootstrap, prefix, schema_registry_url, tmp_path)
    try:
        p1 = procs.start()
        wait_for(lambda: polled(kafka_bootstrap, raw_topic, 3, set()), 30, interval=0.2, what="first session")
        p1.send_signal(signal.SIGKILL)
        p1.wait(10)
        raw = read_all(kafka_bootstrap, raw_topic)
        (s1,) = {e.session for e in envs(raw)}
        last1 = {s: last_of(raw, s1, s) for s in AV_STREAMS}
        assert all(seq >= 3 for seq, _ in last1.values())
        assert markers(kafka_bootstrap, prefix, codec)[f"alphavantage|{AV_STREAMS[0]}"].status == "running"

        p2 = procs.start()
        got = wait_for(lambda: at_least(2, kafka_bootstrap, prefix, codec), 30, what="gaps")
        assert [g.stream for g in got] == AV_STREAMS  # one per stream, seqs being per stream
        for g, stream in zip(got, AV_STREAMS, strict=True):
            check_gap(g, "alphavantage", stream, s1, last1[stream])
        wait_for(lambda: polled(kafka_bootstrap, raw_topic, 2, {s1}), 30, interval=0.2, what="polling")
        procs.sigterm(p2)
        raw = read_all(kafka_bootstrap, raw_topic)
        (s2,) = {e.session for e in envs(raw)} - {s1}
        marks = markers(kafka_bootstrap, prefix, codec)
        for stream in AV_STREAMS:
            m = marks[f"alphavantage|{stream}"]
            assert (m.status, m.stats["session"], m.stats["stream"]) == ("stopped", str(s2), stream)
            assert m.stats["last_seq"] == str(last_of(raw, s2, stream)[0])  # everything it published

        # After a clean stop the next session reports nothing (it writes no raw marker either).
        p3 = procs.start()
        wait_for(
            lambda: polled(kafka_bootstrap, raw_topic, 1, {s1, s2}), 30, interval=0.2, what="third session"
        )
        procs.sigterm(p3)
        assert gaps(kafka_bootstrap, prefix, codec) == got
        assert all(e.content_type == "json" for e in envs(read_all(kafka_bootstrap, raw_topic)))
    finally:
        procs.kill_all()


def test_rest_poller_fatal_producer_error_exits_4_unmarked_so_the_next_session_reports_it(
    sim: AlphaVantageSimulator, kafka_bootstrap: str, schema_registry_url: str, codec: Codec
) -> None:
    prefix = unique_name("sessf") + "."
    raw_topic = prefix + "alphavantage.raw"
    s = AlphaVantageSettings(
        api_key=SecretStr("AVKEY-fatal"), base_url=f"{sim.http_url}/query", symbols=("IBM",),
        data_types=("options", "technicals"), indicators=("RSI",), options_interval_s=0.2,
        technicals_interval_s=0.3, kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=prefix,
        schema_registry_url=schema_registry_url, metrics_port=0, linger_ms=1,
    )  # fmt: skip

    def start() -> tuple[threading.Thread, list[RestPoller], list[int]]:
        got: list[RestPoller] = []
        rc: list[int] = []

        def run() -> None:
            rc.append(rest_run.run(s, AlphaVantageAdapter(s), on_poller=got.append, install_signals=False))

        t = threading.Thread(target=run, daemon=True)
        t.start()
        wait_for(lambda: got, 30, what="poller started")
        return t, got, rc

    t, got, rc = start()
    raw = wait_for(lambda: polled(kafka_bootstrap, raw_topic, 2, set()), 30, interval=0.2, what="polling")
    # What librdkafka's error callback delivers when the idempotent producer is fenced / out of order.
    publisher: Any = cast(Any, got[0]._publish).__self__  # the poller's RawPublisher.publish
    publisher.producer._on_error(KafkaError(KafkaError._FATAL, "test: out-of-order sequence", fatal=True))
    t.join(30)
    assert rc == [EXIT_FATAL]
    (s1,) = {e.session for e in envs(raw)}
    marks = markers(kafka_bootstrap, prefix, codec)
    assert {marks[f"alphavantage|{st}"].status for st in AV_STREAMS} == {"running"}  # not "stopped"

    raw = read_all(kafka_bootstrap, raw_topic)
    t, got, rc = start()
    found = wait_for(lambda: at_least(2, kafka_bootstrap, prefix, codec), 30, what="gaps")
    for g, stream in zip(found, AV_STREAMS, strict=True):
        check_gap(g, "alphavantage", stream, s1, last_of(raw, s1, stream))
    got[0].stop()
    t.join(30)
    assert rc == [0]


# ---- the DBN replay -------------------------------------------------------------------------------

# The shared files span years of record time: at 100 000 x real time the 2020 records go out within a
# second, the 2021 definitions only minutes later, so a SIGKILL after the first messages lands mid-run.
FAST = "100000"


def dbn_topic(bootstrap: str, prefix: str) -> str:
    name = prefix + "databento.raw"  # a pipeline raw topic (<prefix><source>.raw): markers on
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future it returns
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(timeout=30)
    return name


def replay(bootstrap: str, topic: str, files: list[Path], speed: str, registry: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "tickwire.cli", "replay", "dbn", *map(str, files), "--bootstrap", bootstrap]
    cmd += ["--topic", topic, "--no-progress", "--speed", speed]
    env = {**os.environ, "SCHEMA_REGISTRY_URL": registry}
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def replay_done(bootstrap: str, topic: str, files: list[Path], registry: str) -> str:
    out, err = replay(bootstrap, topic, files, "0", registry).communicate(timeout=60)
    assert out.startswith("replay done "), err[-2000:]
    return out


def killed_mid_run(bootstrap: str, topic: str, files: list[Path], registry: str, sig: int) -> int:
    """Start a paced replay, wait for >= 5 new messages, send ``sig``; returns the exit code."""
    before = len(read_all(bootstrap, topic))
    proc = replay(bootstrap, topic, files, FAST, registry)
    try:
        wait_for(lambda: len(read_all(bootstrap, topic)) >= before + 5, 30, interval=0.1, what="replaying")
        assert proc.poll() is None  # still mid-run: the definitions are due minutes later
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if sig == signal.SIGTERM:
        assert out.startswith("replay stopped "), err[-2000:]
    return proc.returncode


def test_dbn_replay_sigkill_then_another_file_set_emits_the_gap_and_clean_ends_none(
    kafka_bootstrap: str, schema_registry_url: str, codec: Codec
) -> None:
    prefix = unique_name("sessd") + "."
    topic = dbn_topic(kafka_bootstrap, prefix)
    a, b = SHARED, [p for p in SHARED if "mbo" not in p.name]  # same datasets: same stream, other session
    sa, sb = session_id(a), session_id(b)
    assert len(SHARED) >= 10 and sa != sb
    assert killed_mid_run(kafka_bootstrap, topic, a, schema_registry_url, signal.SIGKILL) == -signal.SIGKILL
    raw = read_all(kafka_bootstrap, topic)
    (stream,) = {e.stream for e in envs(raw)}
    assert stream == "replay.GLBX.MDP3+XNAS.ITCH"
    last_a = last_of(raw, sa, stream)
    assert last_a[0] == len(raw) >= 5

    replay_done(kafka_bootstrap, topic, b, schema_registry_url)
    (g,) = gaps(kafka_bootstrap, prefix, codec)
    check_gap(g, "databento", stream, sa, last_a)
    m = markers(kafka_bootstrap, prefix, codec)[f"databento|{stream}"]
    raw = read_all(kafka_bootstrap, topic)
    assert (m.status, m.stats["session"], m.stats["last_seq"]) == (
        "stopped",
        str(sb),
        str(last_of(raw, sb, stream)[0]),
    )

    # B ended cleanly (end of files): the next run reports nothing.
    replay_done(kafka_bootstrap, topic, a, schema_registry_url)
    assert gaps(kafka_bootstrap, prefix, codec) == [g]
    assert markers(kafka_bootstrap, prefix, codec)[f"databento|{stream}"].stats["session"] == str(sa)
    assert {e.content_type for e in envs(read_all(kafka_bootstrap, topic))} == {"dbn"}  # no raw end marker


def test_dbn_replay_sigterm_stop_and_a_rerun_of_the_crashed_files_report_no_gap(
    kafka_bootstrap: str, schema_registry_url: str, codec: Codec
) -> None:
    prefix = unique_name("sessd") + "."
    topic = dbn_topic(kafka_bootstrap, prefix)
    a, b = SHARED, [p for p in SHARED if "mbo" not in p.name]
    key = "databento|replay.GLBX.MDP3+XNAS.ITCH"
    assert killed_mid_run(kafka_bootstrap, topic, a, schema_registry_url, signal.SIGTERM) == 0
    m = markers(kafka_bootstrap, prefix, codec)[key]
    assert (m.status, m.stats["session"], m.stats["last_seq"]) == (
        "stopped",
        str(session_id(a)),
        str(len(read_all(kafka_bootstrap, topic))),
    )
    replay_done(kafka_bootstrap, topic, b, schema_registry_url)
    assert gaps(kafka_bootstrap, prefix, codec) == []

    # A crash, then the same files again: the re-run re-publishes the crashed run's seqs (deduped
    # downstream), so nothing is lost and no Gap is due.
    assert killed_mid_run(kafka_bootstrap, topic, b, schema_registry_url, signal.SIGKILL) == -signal.SIGKILL
    assert markers(kafka_bootstrap, prefix, codec)[key].status == "running"
    replay_done(kafka_bootstrap, topic, b, schema_registry_url)
    assert gaps(kafka_bootstrap, prefix, codec) == []
    m = markers(kafka_bootstrap, prefix, codec)[key]
    assert (m.status, m.stats["session"]) == ("stopped", str(session_id(b)))


def test_dbn_replay_fatal_producer_error_exits_4_unmarked_so_the_next_file_set_reports_it(
    kafka_bootstrap: str, schema_registry_url: str, codec: Codec, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = unique_name("sessd") + "."
    topic = dbn_topic(kafka_bootstrap, prefix)
    a, b = SHARED, [p for p in SHARED if "mbo" not in p.name]

    class FatalAfterThree(producer.RawProducer):
        """The real producer, given what librdkafka's error callback delivers once fenced, after 3 records."""

        raw = 0

        def produce(
            self, topic_: str, value: bytes, key: bytes | None, headers: Sequence[tuple[str, bytes]], *,
            stream: str | None = None, partition: int | None = None,
        ) -> bool:  # fmt: skip
            ok = super().produce(topic_, value, key, headers, stream=stream, partition=partition)
            self.raw += topic_ == topic
            if self.raw == 3:
                self._on_error(KafkaError(KafkaError._FATAL, "test: out-of-order sequence", fatal=True))
            return ok

    monkeypatch.setattr(producer, "RawProducer", FatalAfterThree)
    monkeypatch.setattr("tickwire.vendors.databento.replay.setup", lambda: None)  # pytest's logging stays
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", schema_registry_url)
    argv = ["dbn", *map(str, a), "--bootstrap", kafka_bootstrap, "--topic", topic, "--batch", "1"]
    assert replay_cli.main([*argv, "--no-progress"]) == EXIT_FATAL
    raw = read_all(kafka_bootstrap, topic)
    assert [e.seq for e in envs(raw)] == [1, 2, 3]  # what was queued before the error was delivered
    (stream,) = {e.stream for e in envs(raw)}
    m = markers(kafka_bootstrap, prefix, codec)[f"databento|{stream}"]
    assert (m.status, m.stats["session"]) == ("running", str(session_id(a)))  # not "stopped"

    replay_done(kafka_bootstrap, topic, b, schema_registry_url)
    (g,) = gaps(kafka_bootstrap, prefix, codec)
    check_gap(g, "databento", stream, session_id(a), last_of(raw, session_id(a), stream))
