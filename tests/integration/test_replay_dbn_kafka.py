"""`tickwire replay dbn` against the real local Kafka: completeness, order, pacing, bounded memory."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import databento_dbn as dbn
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.fixtures import dbn_gen
from tests.helpers import unique_name, wait_for
from tickwire.contract.envelope import Envelope
from tickwire.vendors.databento.replay import session_id

pytestmark = [pytest.mark.integration, pytest.mark.serial]

REPO = Path(__file__).resolve().parents[2]
SHARED = sorted((REPO.parent / "shared" / "data" / "dbn").glob("*.dbn*"))  # shared/ beside the checkout


@pytest.fixture
def bootstrap(kafka_bootstrap: str) -> str:
    """The shared session broker (tests/conftest.py)."""
    return kafka_bootstrap


def new_topic(bootstrap: str, partitions: int = 3) -> str:
    name = unique_name("test.databento.raw")
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future it returns
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)
    return name


def run_replay(bootstrap: str, topic: str, files: list[Path], *args: str, timeout: float = 240) -> str:
    cmd = [sys.executable, "-m", "tickwire.cli", "replay", "dbn", *map(str, files)]
    cmd += ["--bootstrap", bootstrap, "--topic", topic, "--no-progress", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def consume(bootstrap: str, topic: str, n_records: int, deadline_s: float = 60) -> list[Any]:
    """Every message of the topic (all partitions), until n_records DBN records have been seen."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-replay-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([topic])
    msgs: list[Any] = []
    seen = 0
    deadline = time.monotonic() + deadline_s
    try:
        while seen < n_records and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            msgs.append(m)
            seen += len(decode(m.value())[1])
    finally:
        c.close()
    assert seen == n_records, f"saw {seen} of {n_records} records"
    return msgs


def decode(value: bytes) -> tuple[dbn.Metadata, list[Any]]:
    out = dbn.DBNDecoder(upgrade_policy=dbn.VersionUpgradePolicy.AS_IS).write_and_decode(value)
    assert isinstance(out[0], dbn.Metadata)
    return out[0], out[1:]


def file_records(p: Path) -> list[Any]:
    comp = dbn.Compression.ZSTD if p.name.endswith(".zst") else dbn.Compression.NONE
    dec = dbn.DBNDecoder(upgrade_policy=dbn.VersionUpgradePolicy.AS_IS, compression=comp)
    return list(dec.write_and_decode(p.read_bytes())[1:])


def test_replay_shared_files_publishes_every_record_in_order(bootstrap: str) -> None:
    assert len(SHARED) >= 10
    topic = new_topic(bootstrap)
    paths = sorted(SHARED, key=lambda q: (q.name, str(q)))
    rows = [
        (r.ts_index, fi, k, bytes(r)) for fi, p in enumerate(paths) for k, r in enumerate(file_records(p))
    ]
    want = [raw for *_, raw in sorted(rows)]
    out = run_replay(bootstrap, topic, list(reversed(SHARED)), "--batch", "3")
    assert f"records={len(want)} " in out

    msgs = consume(bootstrap, topic, len(want))
    assert len({m.partition() for m in msgs}) == 1  # keyed by stream: one partition, one order
    msgs.sort(key=lambda m: m.offset())
    got: list[bytes] = []
    envs = []
    for m in msgs:
        _, recs = decode(m.value())
        assert 1 <= len(recs) <= 3
        got += [bytes(r) for r in recs]
        envs.append(Envelope.from_headers(m.headers()))
    assert got == want
    assert [e.seq for e in envs] == list(range(1, len(msgs) + 1))
    assert {(e.source, e.stream, e.session, e.content_type) for e in envs} == {
        ("databento", "replay.GLBX.MDP3+XNAS.ITCH", session_id(SHARED), "dbn")
    }
    assert [e.ts_recv for e in envs] == sorted(e.ts_recv for e in envs)


@pytest.mark.parametrize("speed", [1, 2])
def test_speed_paces_publishes_by_ts_recv(bootstrap: str, tmp_path: Path, speed: int) -> None:
    # ~2.5 s of wall time: 50 trades ~100 ms apart (times speed), irregular jitter from the generator.
    n, spacing = 50, 100_000_000 * speed
    p = dbn_gen.write(tmp_path / "pace.dbn", "trades", n, spacing_ns=spacing, seed=5)
    topic = new_topic(bootstrap, 1)
    run_replay(bootstrap, topic, [p], "--speed", str(speed))
    msgs = sorted(consume(bootstrap, topic, n), key=lambda m: m.offset())
    assert len(msgs) == n  # records 50+ ms apart never share a message at speed >= 1
    wall = [Envelope.from_headers(m.headers()).ts_recv for m in msgs]
    rec = [decode(m.value())[1][0].ts_recv for m in msgs]
    tolerance_ns = 20_000_000
    errors = [(w - wall[0]) - (r - rec[0]) // speed for w, r in zip(wall, rec, strict=True)]
    assert max(abs(e) for e in errors) <= tolerance_ns, errors
    # The schedule is absolute: the last record lands on time, no accumulated drift.
    assert abs(errors[-1]) <= tolerance_ns


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_large_file_streams_with_bounded_memory(bootstrap: str, tmp_path: Path) -> None:
    n = 1_000_000
    p = dbn_gen.write(tmp_path / "big.dbn", "trades", n, seed=6)  # 48 MB of records
    assert p.stat().st_size > 48_000_000
    topic = new_topic(bootstrap, 1)
    cmd = [sys.executable, "-m", "tickwire.cli", "replay", "dbn", str(p), "--bootstrap", bootstrap]
    cmd += ["--topic", topic, "--no-progress", "--queue-max-kbytes", "8192"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    peak_kb = 0
    deadline = time.monotonic() + 240
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                peak_kb = max(peak_kb, _rss_kb(proc.pid))
            except FileNotFoundError:
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert f"records={n} " in out
    # Interpreter + libraries ~35-45 MB, an 8 MB producer queue, one 1 MiB read chunk decoded: the whole
    # 48 MB file (let alone 1M decoded records) cannot fit under this bound.
    assert 0 < peak_kb < 100_000, f"peak RSS {peak_kb} kB"
    messages = int(out.split("messages=")[1].split()[0])
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{uuid.uuid4().hex[:8]}"})
    try:
        low, high = wait_for(lambda: c.get_watermark_offsets(TopicPartition(topic, 0), timeout=5), 60)
    finally:
        c.close()
    assert high - low == messages >= n // 1000


def test_sigterm_stops_and_flushes_what_was_published(bootstrap: str, tmp_path: Path) -> None:
    # 100 records over ~20 s at real time: SIGTERM arrives mid-way, long before the end.
    p = dbn_gen.write(tmp_path / "slow.dbn", "trades", 100, spacing_ns=200_000_000, seed=8)
    topic = new_topic(bootstrap, 1)
    cmd = [sys.executable, "-m", "tickwire.cli", "replay", "dbn", str(p), "--bootstrap", bootstrap]
    cmd += ["--topic", topic, "--no-progress", "--speed", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    try:
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{uuid.uuid4().hex[:8]}"})
        # Wait until publishing is under way (the consumer may not know the new topic at first).
        wait_for(lambda: c.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)[1] >= 3, 60)
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert out.startswith("replay stopped ")
    messages = int(out.split("messages=")[1].split()[0])
    assert 3 <= messages < 100
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1] == messages  # all flushed
    c.close()
