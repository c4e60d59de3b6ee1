"""Pure parts of the DBN replay: merge order, batching, self-contained payloads, schedule, session id."""

from __future__ import annotations

import itertools
import random
import struct
from pathlib import Path
from typing import Any

import databento_dbn as dbn
import pytest

from tests.fixtures import dbn_gen
from tickwire.contract.envelope import Envelope
from tickwire.replay import MarkedSink
from tickwire.vendors.databento.replay import (
    DbnFile,
    Replayer,
    due_ns,
    merge_runs,
    session_id,
    split_run,
    stream_name,
)

# shared/ sits beside the repository checkout (/work/shared next to /work/main, and in CI).
DBN_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "dbn"
SHARED = sorted(p for p in DBN_DIR.glob("*.dbn*"))
PLAIN = [p for p in SHARED if p.suffix == ".dbn"]
ZST = [p for p in SHARED if p.name.endswith(".zst")]


class Sink:
    """Collects what the replayer would hand to the Kafka producer."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = []

    def produce(self, topic: str, value: bytes, key: bytes | None, headers: Any, **_: Any) -> bool:
        self.sent.append((topic, value, key, list(headers)))
        return True

    def poll(self, timeout: float = 0.0) -> int:
        return 0


def decode_all(data: bytes) -> tuple[dbn.Metadata, list[Any]]:
    dec = dbn.DBNDecoder(upgrade_policy=dbn.VersionUpgradePolicy.AS_IS, compression=_comp(data))
    out = dec.write_and_decode(data)
    assert isinstance(out[0], dbn.Metadata)
    return out[0], out[1:]


def _comp(data: bytes) -> Any:
    return dbn.Compression.ZSTD if data[:4] == b"\x28\xb5\x2f\xfd" else dbn.Compression.NONE


def expected_merge(paths: list[Path]) -> list[bytes]:
    """Reference order: a plain sort of every record by (ts_index, file index, position in file)."""
    rows = []
    for fi, p in enumerate(sorted(paths, key=lambda q: (q.name, str(q)))):
        _, recs = decode_all(p.read_bytes())
        rows += [(r.ts_index, fi, k, bytes(r)) for k, r in enumerate(recs)]
    return [raw for *_, raw in sorted(rows)]


def replay(
    paths: list[Path], *, batch: int = 1000, speed: float = 0, chunk: int = 1 << 20, **kw: Any
) -> Sink:
    paths = sorted(paths, key=lambda q: (q.name, str(q)))
    files = [DbnFile(p, i, chunk) for i, p in enumerate(paths)]
    sink = Sink()
    rep = Replayer(files, sink, topic="t", speed=speed, batch=batch, stream="s", session=7, **kw)
    assert speed == 0, "unit tests never sleep"
    rep.run()
    assert rep.stats.messages == len(sink.sent)
    return sink


def records_of(sink: Sink) -> list[bytes]:
    out: list[bytes] = []
    for _, value, _, _ in sink.sent:
        _, recs = decode_all(value)
        out += [bytes(r) for r in recs]
    return out


def test_shared_dbn_files_are_present() -> None:
    # Guards the parametrized tests below against silently running on nothing.
    assert len(ZST) >= 5 and len(PLAIN) >= 5, DBN_DIR


# -- merge ------------------------------------------------------------------------------------------


def test_merge_runs_matches_reference_sort_with_ties_and_block_splits() -> None:
    rng = random.Random(11)
    for _ in range(200):
        streams = []
        for _f in range(rng.randint(1, 4)):
            ts = sorted(rng.randint(0, 30) for _ in range(rng.randint(0, 40)))
            raw = [f"{_f}:{k}".encode() for k in range(len(ts))]
            cuts = sorted({0, len(ts), *(rng.randint(0, len(ts)) for _ in range(3))})
            blocks = [(ts[a:b], raw[a:b]) for a, b in itertools.pairwise(cuts)]
            streams.append((ts, raw, blocks))
        want = [
            r
            for *_, r in sorted(
                (t, f, k, r)
                for f, (ts, raw, _) in enumerate(streams)
                for k, (t, r) in enumerate(zip(ts, raw, strict=True))
            )
        ]
        got: list[bytes] = []
        for i, ts, raw in merge_runs([iter(b) for _, _, b in streams]):
            assert len(ts) == len(raw) > 0
            assert all(r.startswith(f"{i}:".encode()) for r in raw)  # a run comes from one source
            got += raw
        assert got == want


def test_merge_keeps_file_order_when_a_file_is_not_sorted() -> None:
    a = [([5, 1, 9], [b"a0", b"a1", b"a2"])]
    b = [([3, 4], [b"b0", b"b1"])]
    got = [r for _, _, raw in merge_runs([iter(a), iter(b)]) for r in raw]
    assert [r for r in got if r.startswith(b"a")] == [b"a0", b"a1", b"a2"]
    assert sorted(got) == sorted([b"a0", b"a1", b"a2", b"b0", b"b1"])


def test_shared_files_merge_in_ts_recv_order_byte_identical() -> None:
    # Both the v3 .zst and the plain .dbn sets, every schema, merged into one stream.
    sink = replay(SHARED, batch=2)
    got = records_of(sink)
    assert got == expected_merge(SHARED)
    assert len(got) == sum(len(decode_all(p.read_bytes())[1]) for p in SHARED)
    # ts_recv (or ts_event where a schema has none) never goes backwards across the merged stream.
    stamps = []
    for _, value, _, _ in sink.sent:
        stamps += [r.ts_index for r in decode_all(value)[1]]
    assert stamps == sorted(stamps)
    assert all(
        getattr(r, "ts_recv", r.ts_index) == r.ts_index for _, v, _, _ in sink.sent for r in decode_all(v)[1]
    )


def test_generated_files_merge_trades_with_mbp10(tmp_path: Path) -> None:
    t = dbn_gen.write(tmp_path / "t.dbn.zst", "trades", 3000, spacing_ns=1_000_000, zst=True, seed=1)
    m = dbn_gen.write(tmp_path / "m.dbn", "mbp-10", 700, spacing_ns=4_000_000, seed=2)
    # Small read chunks force many block boundaries inside the merge.
    sink = replay([t, m], batch=50, chunk=4096)
    assert records_of(sink) == expected_merge([t, m])


# -- payloads -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SHARED, ids=lambda p: p.name)
def test_each_message_decodes_alone_with_the_files_metadata(path: Path) -> None:
    md, recs = decode_all(path.read_bytes())
    sink = replay([path], batch=1)
    assert len(sink.sent) == len(recs)
    for (_, value, key, _), rec in zip(sink.sent, recs, strict=True):
        md2, got = decode_all(value)
        assert value.startswith(md.encode())
        assert (md2.dataset, md2.schema, md2.version, md2.mappings) == (
            md.dataset,
            md.schema,
            md.version,
            md.mappings,
        )
        assert [bytes(r) for r in got] == [bytes(rec)]
        assert key == b"s"


@pytest.mark.parametrize("path", PLAIN, ids=lambda p: p.name)
def test_plain_file_record_bytes_are_the_files_own_bytes(path: Path) -> None:
    # Independent of the decoder: after the metadata header the file is the records, back to back.
    data = path.read_bytes()
    (mlen,) = struct.unpack_from("<I", data, 4)
    assert b"".join(records_of(replay([path], batch=1000))) == data[8 + mlen :]


def test_batching_boundaries_by_count(tmp_path: Path) -> None:
    p = dbn_gen.write(tmp_path / "t.dbn", "trades", 2500, seed=3)
    sink = replay([p], batch=1000, chunk=1 << 22)
    assert [len(decode_all(v)[1]) for _, v, _, _ in sink.sent] == [1000, 1000, 500]
    assert records_of(sink) == expected_merge([p])


def test_batching_boundaries_by_bytes(tmp_path: Path) -> None:
    p = dbn_gen.write(tmp_path / "m.dbn.zst", "mbp-10", 300, zst=True, seed=4)
    sink = replay([p], batch=1000, max_bytes=4000)
    md_len = len(DbnFile(p, 0).meta_bytes)
    per_msg = (4000 - md_len) // 368
    counts = [len(decode_all(v)[1]) for _, v, _, _ in sink.sent]
    assert all(len(v) <= 4000 for _, v, _, _ in sink.sent)
    assert counts[:-1] == [per_msg] * (len(counts) - 1) and sum(counts) == 300


def test_envelope_headers_seq_and_stream() -> None:
    sink = replay(PLAIN[:3], batch=1)
    from tickwire.contract.envelope import Envelope

    envs = [Envelope.from_headers(h) for *_, h in sink.sent]
    assert [e.seq for e in envs] == list(range(1, len(envs) + 1))
    assert {(e.source, e.stream, e.session, e.content_type) for e in envs} == {("databento", "s", 7, "dbn")}
    assert all(e.ts_recv > 1_700_000_000_000_000_000 for e in envs)  # wall clock at publish, ns


def test_split_run_window_and_cap() -> None:
    ts = [0, 1, 2, 10, 11, 30, 31, 32, 33]
    assert list(split_run(ts, 100, None)) == [(0, 9)]
    assert list(split_run(ts, 4, None)) == [(0, 4), (4, 8), (8, 9)]
    assert list(split_run(ts, 100, 2)) == [(0, 3), (3, 5), (5, 8), (8, 9)]
    assert list(split_run(ts, 2, 5)) == [(0, 2), (2, 3), (3, 5), (5, 7), (7, 9)]


# -- schedule, ids -------------------------------------------------------------------------------------


def test_due_ns_absolute_schedule() -> None:
    first, wall = 1_609_160_400_000_000_000, 1_800_000_000_000_000_000
    assert due_ns(first, first, wall, 1) == wall
    assert due_ns(first + 1_500_000_000, first, wall, 1) == wall + 1_500_000_000
    assert due_ns(first + 1_500_000_000, first, wall, 2) == wall + 750_000_000
    assert due_ns(first + 1_500_000_000, first, wall, 0.5) == wall + 3_000_000_000
    assert due_ns(first + 3, first, wall, 3) == wall + 1
    assert due_ns(first - 10, first, wall, 1) == wall - 10  # late record: due already, published at once
    assert due_ns(first + 10**12, first, wall, 0) == wall  # speed 0: everything due now
    # A day at 1x keeps ns precision (no float drift over long spans).
    assert due_ns(first + 86_400_000_000_001, first, wall, 1) == wall + 86_400_000_000_001


def test_session_id_stable_and_order_independent(tmp_path: Path) -> None:
    a, b = tmp_path / "a.dbn", tmp_path / "b.dbn"
    a.write_bytes(b"x" * 10)
    b.write_bytes(b"y" * 20)
    sid = session_id([a, b])
    assert sid == session_id([b, a]) == session_id([Path(str(a)), Path(str(b))])
    assert 0 < sid < 2**63
    assert sid != session_id([a])
    b.write_bytes(b"y" * 21)
    assert session_id([a, b]) != sid
    assert stream_name(["GLBX.MDP3", "XNAS.ITCH", "GLBX.MDP3"]) == "replay.GLBX.MDP3+XNAS.ITCH"


# -- generator ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("schema", ["trades", "mbp-10", "ohlcv-1m"])
@pytest.mark.parametrize("zst", [False, True])
def test_dbn_gen_round_trips(tmp_path: Path, schema: str, zst: bool) -> None:
    p = dbn_gen.write(tmp_path / f"x.dbn{'.zst' if zst else ''}", schema, 500, zst=zst)
    md, recs = decode_all(p.read_bytes())
    assert len(recs) == 500
    assert md.schema == schema and md.dataset == "GLBX.MDP3"
    assert set(md.mappings) == {s for s, _, _ in dbn_gen.SYMBOLS}
    stamps = [r.ts_index for r in recs]
    if schema == "ohlcv-1m":
        assert stamps == sorted(stamps)
    else:
        assert all(x < y for x, y in itertools.pairwise(stamps))
    assert {r.instrument_id for r in recs} == {iid for _, iid, _ in dbn_gen.SYMBOLS}


def test_dispatcher() -> None:
    from tickwire import replay as dispatcher

    assert dispatcher.main(["--help"]) == 0
    assert dispatcher.main(["nope"]) == 2
    with pytest.raises(SystemExit) as exc:
        dispatcher.main(["dbn", "--help"])
    assert exc.value.code == 0


def test_cli_rejects_non_dbn_file(tmp_path: Path) -> None:
    from tickwire import replay

    bad = tmp_path / "bad.dbn"
    bad.write_bytes(b"not dbn at all")
    assert replay.main(["dbn", str(bad), "--no-progress"]) == 2


def test_fatal_producer_error_exits_4_and_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A fatal producer error mid-replay: exit ``EXIT_FATAL`` (as the live producers) and one error line."""
    import logging

    from confluent_kafka import KafkaError

    from tickwire import replay
    from tickwire.ingest import producer

    class FatalAfterFirst(producer.RawProducer):
        def produce(self, *args: Any, **kwargs: Any) -> bool:
            ok = super().produce(*args, **kwargs)
            self._on_error(KafkaError(KafkaError._FATAL, "out-of-order sequence", fatal=True))
            return ok

        def flush(self, timeout: float = 30.0) -> int:
            self._p.purge()  # never connects (no broker): drop what is queued instead of waiting
            return super().flush(0)

    monkeypatch.setattr(producer, "RawProducer", FatalAfterFirst)
    monkeypatch.setattr("tickwire.vendors.databento.replay.setup", lambda: None)
    p = dbn_gen.write(tmp_path / "t.dbn", "trades", 50, seed=5)
    with caplog.at_level(logging.ERROR, logger="tickwire.replay"):
        # No broker here: a raw topic no pipeline reads keeps session markers (which need one) off.
        argv = ["dbn", str(p), "--bootstrap", "127.0.0.1:1", "--topic", "unit.raw", "--batch", "10"]
        rc = replay.main([*argv, "--no-progress"])
    assert rc == producer.EXIT_FATAL == 4
    lines = [r for r in caplog.records if r.name == "tickwire.replay" and r.levelno == logging.ERROR]
    assert len(lines) == 1 and "fatal producer error" in lines[0].getMessage()
    assert "_FATAL" in lines[0].getMessage()


def test_marked_sink_passes_records_through_and_keeps_markers_off_for_a_topic_no_pipeline_reads() -> None:
    """Markers need a ``<prefix><source>.raw`` topic; records to any other go straight through."""
    inner = Sink()
    sink = MarkedSink(inner, "127.0.0.1:1")  # type: ignore[arg-type]  # never connects: markers are off
    for seq in (1, 2, 3):
        headers = Envelope("databento", "replay.X", 77, seq, 10 + seq, "dbn", "v").to_headers()
        assert sink.produce("test.databento.raw-1", b"p%d" % seq, b"replay.X", headers, stream="replay.X")
    assert [(t, v, k) for t, v, k, _ in inner.sent] == [
        ("test.databento.raw-1", b"p1", b"replay.X"),
        ("test.databento.raw-1", b"p2", b"replay.X"),
        ("test.databento.raw-1", b"p3", b"replay.X"),
    ]
    assert sink.markers == {("databento", "replay.X"): None}
    assert sink.last_seq == {("databento", "replay.X"): 3}
    assert sink.codec is None  # no marker, no codec built
    sink.stop()  # nothing to mark
