"""`tickwire replay dbn FILE...`: publish Databento DBN files to `databento.raw`, merged and paced.

Files (plain or zstd, detected by magic) are decoded as a stream, one fixed-size chunk at a time, and
merged into one stream ordered by index timestamp (`ts_recv`, or `ts_event` for schemas without one,
e.g. OHLCV); ties go to the lower file index, then file order. Files are indexed in sorted-name order
so the same file set always yields the same stream.

Raw payload contract (shared with the databento parser): one Kafka value = the source file's encoded
`Metadata` followed by 1..N of that file's records, byte-identical and in file order, so every message
decodes alone with `DBNDecoder`. Records are kept exactly as stored (`VersionUpgradePolicy.AS_IS`).

Envelope: stream `replay.<dataset>`, session = a 63-bit hash of the file names and sizes (re-publishing
the same files repeats (stream, session, seq) so the normalizer dedupes the overlap), seq = 1.. per
message. Key = the stream id: one stream stays on one partition, which keeps seq and every instrument
in order (a per-symbol key would scatter one seq-numbered stream over partitions).
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import heapq
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, cast

import databento_dbn as dbn

from tickwire import __version__
from tickwire.contract.adapter import RawSink, SinkFactory
from tickwire.contract.envelope import H_SEQ, H_TS_RECV, Envelope
from tickwire.logs import kv, setup

log = logging.getLogger(__name__)

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK_BYTES = 1 << 20
MAX_PAYLOAD_BYTES = 900_000  # under Kafka's default 1 MB record limit
WINDOW_NS = 1_000_000  # at speed >= 1 a message holds records due within 1 ms of wall time

Block = tuple[list[int], list[bytes]]  # (index timestamps, record bytes) of consecutive records
Run = tuple[int, list[int], list[bytes]]  # (file index, timestamps, record bytes)


class DbnFile:
    """One DBN file decoded incrementally: metadata up front, then blocks of records."""

    def __init__(self, path: Path, index: int, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.path = path
        self.index = index
        self.size = path.stat().st_size
        self.bytes_read = 0
        self.max_record = 0  # largest record size seen in the current block
        self._chunk = chunk_bytes
        self._fh = open(path, "rb")  # noqa: SIM115 - closed at EOF by blocks()
        head = self._fh.read(4)
        self._fh.seek(0)
        # The stubs type enum members as their values; they are real members at run time.
        comp = cast(dbn.Compression, dbn.Compression.ZSTD if head == ZSTD_MAGIC else dbn.Compression.NONE)
        as_is = cast(dbn.VersionUpgradePolicy, dbn.VersionUpgradePolicy.AS_IS)
        self._dec = dbn.DBNDecoder(compression=comp, upgrade_policy=as_is)
        self._pending: list[Any] = []
        md: dbn.Metadata | None = None
        try:
            while md is None:
                recs = self._read()
                if recs is None:
                    raise ValueError(f"{path}: no DBN metadata (empty or not a DBN file)")
                if recs:
                    md, self._pending = recs[0], recs[1:]
            if not isinstance(md, dbn.Metadata):
                raise ValueError(f"{path}: stream does not start with DBN metadata")
        except BaseException:
            self._fh.close()
            raise
        self.metadata = md
        self.meta_bytes: bytes = md.encode()

    def _read(self) -> list[Any] | None:
        chunk = self._fh.read(self._chunk)
        if not chunk:
            return None
        self.bytes_read += len(chunk)
        recs: list[Any] = self._dec.write_and_decode(chunk)
        return recs

    def blocks(self) -> Iterator[Block]:
        recs: list[Any] | None = self._pending
        self._pending = []
        try:
            while recs is not None:
                if recs:
                    raw = [bytes(r) for r in recs]
                    self.max_record = max(map(len, raw))
                    yield [r.ts_index for r in recs], raw
                recs = self._read()
            if self._dec.buffer():
                log.warning("truncated DBN file, trailing bytes ignored %s", kv(path=self.path))
        finally:
            self._fh.close()


def merge_runs(sources: Sequence[Iterator[Block]]) -> Iterator[Run]:
    """K-way merge by timestamp yielding runs of consecutive records from one source.

    Ties go to the lower source index, then source order. Works a run at a time (bisect over the
    block's timestamps) instead of a heap operation per record; per-source order is always kept.
    """
    blocks: list[Block] = [([], [])] * len(sources)
    pos = [0] * len(sources)
    heap: list[tuple[int, int]] = []

    def load(i: int) -> bool:
        for blk in sources[i]:
            if blk[0]:
                blocks[i], pos[i] = blk, 0
                return True
        return False

    for i in range(len(sources)):
        if load(i):
            heap.append((blocks[i][0][0], i))
    heapq.heapify(heap)
    while heap:
        _, i = heapq.heappop(heap)
        ts, raw = blocks[i]
        p = pos[i]
        if heap:
            t2, j = heap[0]
            cut = bisect.bisect_right if i < j else bisect.bisect_left
            end = max(cut(ts, t2, p), p + 1)
        else:
            end = len(ts)
        yield i, ts[p:end], raw[p:end]
        pos[i] = end
        if end < len(ts):
            heapq.heappush(heap, (ts[end], i))
        elif load(i):
            heapq.heappush(heap, (blocks[i][0][0], i))


def split_run(ts: Sequence[int], max_records: int, window: int | None) -> Iterator[tuple[int, int]]:
    """Message boundaries [a, b) within a run: at most max_records each and, with a window (record-time
    ns), only records within `window` of the message's first one so pacing stays right."""
    n, a = len(ts), 0
    while a < n:
        hi = min(n, a + max_records)
        b = hi if window is None else max(a + 1, bisect.bisect_right(ts, ts[a] + window, a, hi))
        yield a, b
        a = b


def due_ns(ts: int, first_ts: int, start_wall_ns: int, speed: float) -> int:
    """Wall-clock ns at which a record stamped `ts` is due: an absolute schedule, so no drift builds up."""
    if speed <= 0:
        return start_wall_ns
    delta = ts - first_ts
    if float(speed).is_integer():
        return start_wall_ns + delta // int(speed)
    return start_wall_ns + int(delta / speed)


def session_id(paths: Sequence[Path]) -> int:
    """Stable non-zero 63-bit id of a file set (names + sizes, order-independent)."""
    h = hashlib.blake2b(digest_size=8)
    for name, size in sorted((p.name, p.stat().st_size) for p in paths):
        h.update(f"{name}\0{size}\n".encode())
    return (int.from_bytes(h.digest(), "big") & (2**63 - 1)) or 1


def stream_name(datasets: Sequence[str]) -> str:
    return "replay." + "+".join(sorted(set(datasets)))


@dataclass
class Stats:
    records: int = 0
    messages: int = 0
    lag_ns: int = 0
    last_ts: int = 0
    started: float = field(default_factory=time.perf_counter)


class Replayer:
    """Drives files -> merged runs -> messages -> producer, paced by `speed` (0 = flat out)."""

    def __init__(
        self,
        files: Sequence[DbnFile],
        producer: RawSink,
        *,
        topic: str,
        speed: float,
        batch: int,
        stream: str,
        session: int,
        max_bytes: int = MAX_PAYLOAD_BYTES,
    ) -> None:
        self.files, self.producer, self.topic = files, producer, topic
        self.speed, self.batch, self.max_bytes = speed, batch, max_bytes
        self.stream, self.session = stream, session
        self.stats = Stats()
        self.stopping = False
        self.failed = False
        self._key = stream.encode()

    def messages(self) -> Iterator[tuple[int, int, int, bytes]]:
        """(first record timestamp, last record timestamp, record count, payload) in publish order."""
        window = None if self.speed <= 0 else int(WINDOW_NS * self.speed)
        for i, ts, raw in merge_runs([f.blocks() for f in self.files]):
            f = self.files[i]
            cap = max(1, min(self.batch, (self.max_bytes - len(f.meta_bytes)) // max(1, f.max_record)))
            n = len(ts)
            if n <= cap and (window is None or ts[-1] - ts[0] <= window):
                # Interleaved files give many short runs: skip the splitting machinery for them.
                yield ts[0], ts[-1], n, f.meta_bytes + b"".join(raw)
                continue
            for a, b in split_run(ts, cap, window):
                yield ts[a], ts[b - 1], b - a, f.meta_bytes + b"".join(raw[a:b])

    def _wait_until(self, due: int) -> None:
        while not self.stopping:
            left = due - time.time_ns()
            if left <= 0:
                return
            if left > 2_000_000:
                self.producer.poll(min(left - 1_000_000, 50_000_000) / 1e9)  # serves deliveries meanwhile
            else:
                time.sleep(left / 1e9)

    def run(self, progress: Any = None) -> Stats:
        st = self.stats
        st.started = time.perf_counter()
        first_ts: int | None = None
        start_wall = time.time_ns()
        next_ui = 0.0
        # Envelope headers built once; only seq and ts_recv change per message.
        base = Envelope("databento", self.stream, self.session, 0, 0, "dbn", __version__).to_headers()
        names = [k for k, _ in base]
        i_seq, i_ts = names.index(H_SEQ), names.index(H_TS_RECV)
        produce, topic, key, stream = self.producer.produce, self.topic, self._key, self.stream
        for ts0, ts1, n, payload in self.messages():
            if first_ts is None:
                first_ts, start_wall = ts0, time.time_ns()
            if self.speed > 0:
                due = due_ns(ts0, first_ts, start_wall, self.speed)
                self._wait_until(due)
                st.lag_ns = time.time_ns() - due
            if self.stopping:
                break
            st.messages += 1
            headers = base.copy()
            headers[i_seq] = (H_SEQ, b"%d" % st.messages)
            headers[i_ts] = (H_TS_RECV, b"%d" % time.time_ns())
            produce(topic, payload, key, headers, stream=stream)
            st.records += n
            st.last_ts = ts1
            if progress is not None and (now := time.perf_counter()) >= next_ui:
                progress(self)
                next_ui = now + 0.2
        return st

    def bytes_read(self) -> tuple[int, int]:
        return sum(f.bytes_read for f in self.files), sum(f.size for f in self.files)


def _progress_ui(enabled: bool) -> tuple[Any, Any]:
    """A rich progress bar on stderr (bytes read), with records, records/s and lag to real time."""
    if not enabled:
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(
        TextColumn("replay"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = prog.add_task("replay", total=1, info="")

    def update(r: Replayer) -> None:
        done, total = r.bytes_read()
        st = r.stats
        rate = st.records / max(1e-9, time.perf_counter() - st.started)
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(st.last_ts / 1e9)) if st.last_ts else "-"
        lag = f"lag {st.lag_ns / 1e6:.1f} ms" if r.speed > 0 else "flat out"
        lag += f" at {at}Z"
        prog.update(task, completed=done, total=max(total, 1), info=f"{st.records:,} rec {rate:,.0f}/s {lag}")

    return prog, update


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tickwire replay dbn", description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path, help=".dbn or .dbn.zst files, merged by ts_recv")
    ap.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="0 = as fast as possible, 1 = real time, N = N times real time",
    )
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"))
    ap.add_argument("--topic", default="databento.raw")
    ap.add_argument("--batch", type=int, default=1000, help="max records per Kafka message")
    ap.add_argument("--max-bytes", type=int, default=MAX_PAYLOAD_BYTES, help="max payload bytes per message")
    ap.add_argument("--stream", default=None, help="envelope stream id (default replay.<dataset>)")
    ap.add_argument("--queue-max-kbytes", type=int, default=65536, help="producer local queue bound")
    ap.add_argument("--chunk-bytes", type=int, default=CHUNK_BYTES, help="file read size")
    ap.add_argument("--no-progress", action="store_true")
    return ap


def main(argv: list[str], make_sink: SinkFactory) -> int:
    """``make_sink`` is the producer wrapper (injected by ``tickwire replay``: vendors import no stage)."""
    a = build_parser().parse_args(argv)
    setup()
    if a.batch < 1 or a.speed < 0:
        print("tickwire replay dbn: --batch must be >= 1 and --speed >= 0", file=sys.stderr)
        return 2
    paths = sorted(a.files, key=lambda p: (p.name, str(p)))
    try:
        files = [DbnFile(p, i, a.chunk_bytes) for i, p in enumerate(paths)]
    except (OSError, ValueError, dbn.DBNError) as exc:
        print(f"tickwire replay dbn: {exc}", file=sys.stderr)
        return 2
    producer = make_sink(a.bootstrap, "tickwire-replay-dbn", a.queue_max_kbytes)
    stream = a.stream or stream_name([f.metadata.dataset for f in files])
    rep = Replayer(
        files, producer, topic=a.topic, speed=a.speed, batch=a.batch, stream=stream,
        session=session_id(paths), max_bytes=a.max_bytes,
    )  # fmt: skip

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received, stopping %s", kv(signal=signal.Signals(signum).name))
        rep.stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    log.info("replay start %s", kv(files=len(files), stream=stream, session=rep.session, speed=a.speed))
    prog, update = _progress_ui(not a.no_progress and sys.stderr.isatty())
    try:
        if prog is not None:
            with prog:
                rep.run(update)
        else:
            rep.run()
    except dbn.DBNError as exc:
        log.error("decode failed, stopping %s", kv(error=exc))
        rep.stopping = rep.failed = True
    finally:
        remaining = producer.flush(60.0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    st = rep.stats
    secs = time.perf_counter() - st.started
    print(
        f"replay {'stopped' if rep.stopping else 'done'} records={st.records} messages={st.messages} "
        f"seconds={secs:.3f} records_per_s={st.records / max(secs, 1e-9):.0f} unflushed={remaining}",
        flush=True,
    )
    # A signal is a requested stop: exit 0 once everything published so far is flushed.
    return 0 if remaining == 0 and not rep.failed else 1
