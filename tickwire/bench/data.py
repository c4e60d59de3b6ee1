"""Benchmark inputs: recorded vendor frames, generated Alpaca frames, generated DBN batches, and the
mixed raw backlog built from them (with real envelope headers and unique, gap-free seqs per stream).

Everything here is pure generation (no Kafka): the scenarios decide where the records go.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from tickwire import __version__
from tickwire.contract.envelope import Envelope
from tickwire.resources import recorded_dir

RECORDED = recorded_dir()
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One raw Kafka record to publish: ``events`` vendor events travel in it (DBN batches carry many)."""

    source: str
    stream: str
    key: bytes
    value: bytes
    content_type: str
    events: int = 1
    # The receive time recorded with the payload (ns), or None for generated events (stamped when sent).
    # Recorded crypto frames carry their 2021 event times: stamped "now" they are days late for the
    # normalizer's event-time window and would measure the DLQ path instead of the canonical one.
    ts_recv: int | None = None


@cache
def recorded_frames(vendor: str) -> tuple[bytes, ...]:
    """Exact payloads received in the shared recorded WebSocket session of ``vendor`` (binance|coinbase)."""
    return tuple(p for _, p in recorded_session(vendor))


@cache
def recorded_session(vendor: str) -> tuple[tuple[int, bytes], ...]:
    """(receive time ns, payload) of each frame of the shared recorded session of ``vendor``."""
    from tickwire.recording import load_recording

    name = {"binance": "cryptofeed-BINANCE.ws.1.0", "coinbase": "cryptofeed-COINBASE.ws.28.0"}[vendor]
    return tuple((round(ts * 1e9), p) for ts, p in load_recording(RECORDED / name).frames)


@cache
def coinbase_products() -> bytes | None:
    """The recorded Coinbase ``/products`` REST answer (product metadata), published once per backlog."""
    from tickwire.recording import load_recording

    rest = load_recording(RECORDED / "cryptofeed-COINBASE.0").rest
    return next(iter(rest.values()), None)


def _classifier(vendor: str) -> Any:
    """The real producer's key function (``VendorAdapter.classify``) for a vendor."""
    if vendor == "binance":
        from tickwire.vendors.binance.adapter import BinanceAdapter
        from tickwire.vendors.binance.settings import BinanceSettings

        return BinanceAdapter(BinanceSettings.load()).classify
    if vendor == "coinbase":
        from tickwire.vendors.coinbase.adapter import CoinbaseAdapter
        from tickwire.vendors.coinbase.settings import CoinbaseSettings

        return CoinbaseAdapter(CoinbaseSettings.load()).classify
    from tickwire.vendors.alpaca.adapter import AlpacaAdapter
    from tickwire.vendors.alpaca.settings import AlpacaSettings

    return AlpacaAdapter(AlpacaSettings.load(api_key="bench", secret_key="bench"), feed="stocks").classify


def recorded_events(vendor: str, stream: str) -> list[RawEvent]:
    """The recorded frames of a vendor as raw events keyed like the real producer keys them."""
    classify = _classifier(vendor)
    out = []
    for ts, f in recorded_session(vendor):
        key = classify(f) or stream
        out.append(RawEvent(vendor, stream, key.encode(), f, "json", ts_recv=ts))
    return out


def alpaca_events(n_frames: int, batch: int, seed: int = 11) -> list[RawEvent]:
    """Alpaca stock frames (JSON arrays of trades/quotes) made by the simulator's own generator."""
    from tickwire.vendors.alpaca.simulator import AlpacaSimulator, encode

    sim = AlpacaSimulator(symbols=("AAPL", "MSFT", "SPY", "QQQ"), seed=seed, record_frames=False)
    out = []
    for i in range(n_frames):
        sym = sim.symbols[i % len(sim.symbols)]
        frame = encode([sim.make_event(sym) for _ in range(batch)], False)
        out.append(RawEvent("alpaca", "stocks.iex", sym.encode(), frame, "json", batch))
    return out


@cache
def dbn_gen() -> ModuleType:
    """tests/fixtures/dbn_gen.py (the project's DBN file generator), loaded from the source tree."""
    path = REPO_ROOT / "tests" / "fixtures" / "dbn_gen.py"
    spec = importlib.util.spec_from_file_location("tickwire_bench_dbn_gen", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


def dbn_events(n_records: int, batch: int, schema: str = "trades") -> list[RawEvent]:
    """DBN payloads as ``tickwire replay dbn`` publishes them: file metadata + ``batch`` records each."""
    gen = dbn_gen()
    start = gen.DEFAULT_START_NS
    meta = gen.metadata(schema, start, start + n_records * 1_000_000).encode()
    recs = gen.records(schema, n_records, start, 1_000_000)
    stream = "replay.GLBX.MDP3"
    out: list[RawEvent] = []
    while True:
        chunk = list(itertools.islice(recs, batch))
        if not chunk:
            return out
        out.append(RawEvent("databento", stream, stream.encode(), meta + b"".join(chunk), "dbn", len(chunk)))


def dbn_file(cache_dir: Path, n_records: int, schema: str = "trades") -> Path:
    """A generated DBN file of ``n_records`` (cached: generating a million records takes a while)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"bench-{schema}-{n_records}.dbn"
    if not path.exists() or path.stat().st_size == 0:
        tmp = path.with_suffix(".tmp")
        dbn_gen().write(tmp, schema, n_records)
        tmp.rename(path)
    return path


@dataclass
class Mix:
    """Shares of vendor events in the mixed backlog (they need not sum to 1: they are normalized)."""

    binance: float = 0.3
    coinbase: float = 0.3
    alpaca: float = 0.2
    databento: float = 0.2
    alpaca_batch: int = 4  # messages per Alpaca frame
    dbn_batch: int = 100  # DBN records per raw record


_DEPTH_IDS = re.compile(rb'"U":(\d+),"u":(\d+)')


def cycled(vendor: str, base: list[RawEvent], n: int) -> list[RawEvent]:
    """``n`` events cycling the recorded ``base``, each pass continuing the feed rather than repeating it.

    A verbatim repeat is not what a live feed sends: Binance diff-depth update ids would go backwards, so
    from the second pass on every diff is one the book already covers (a control frame, no record), and
    two thirds of the Binance share measured the stale-diff path. Each pass therefore shifts the ``U``/``u``
    ids of every symbol by that symbol's id span in the recording (pass k starts where pass k-1 ended);
    every other byte of the payload stays as recorded.
    """
    if not base:
        return []
    if vendor != "binance":
        return [base[i % len(base)] for i in range(n)]
    span: dict[bytes, list[int]] = {}
    for e in base:
        m = _DEPTH_IDS.search(e.value)
        if m is not None:
            lo_hi = span.setdefault(e.key, [int(m[1]), int(m[2])])
            lo_hi[0], lo_hi[1] = min(lo_hi[0], int(m[1])), max(lo_hi[1], int(m[2]))
    out: list[RawEvent] = []
    for i in range(n):
        k, j = divmod(i, len(base))
        e = base[j]
        m = _DEPTH_IDS.search(e.value) if k else None
        if m is not None:
            lo, hi = span[e.key]
            d = k * (hi - lo + 1)
            ids = b'"U":%d,"u":%d' % (int(m[1]) + d, int(m[2]) + d)
            e = dataclasses.replace(e, value=e.value[: m.start()] + ids + e.value[m.end() :])
        out.append(e)
    return out


def mixed_backlog(total_events: int, mix: Mix | None = None) -> list[RawEvent]:
    """At least ``total_events`` vendor events over the four vendors, recorded frames cycled as needed.

    Interleaved round-robin by vendor so every raw topic fills at the same pace.
    """
    mix = mix or Mix()
    shares = {
        "binance": mix.binance,
        "coinbase": mix.coinbase,
        "alpaca": mix.alpaca,
        "databento": mix.databento,
    }
    norm = sum(shares.values()) or 1.0
    want = {v: int(total_events * s / norm + 0.5) for v, s in shares.items()}
    per_vendor: dict[str, list[RawEvent]] = {}
    for vendor in ("binance", "coinbase"):
        base = recorded_events(vendor, "spot" if vendor == "binance" else "feed")
        n = want[vendor]
        events = cycled(vendor, base, n)
        if vendor == "coinbase" and events and (products := coinbase_products()) is not None:
            events.insert(0, RawEvent("coinbase", "rest.products", b"rest.products", products, "json"))
        per_vendor[vendor] = events
    per_vendor["alpaca"] = alpaca_events(-(-want["alpaca"] // mix.alpaca_batch), mix.alpaca_batch)
    per_vendor["databento"] = dbn_events(want["databento"], mix.dbn_batch)
    out: list[RawEvent] = []
    lists = [v for v in per_vendor.values() if v]
    for group in itertools.zip_longest(*lists):
        out.extend(e for e in group if e is not None)
    return out


class Sequencer:
    """Envelope headers per raw event: one session per stream set, seq 1.. per (source, stream)."""

    def __init__(self, session: int | None = None) -> None:
        self.session = session if session is not None else time.time_ns()
        self.seq: dict[tuple[str, str], int] = {}

    def envelope(self, ev: RawEvent, ts_recv: int | None = None) -> Envelope:
        k = (ev.source, ev.stream)
        n = self.seq.get(k, 0) + 1
        self.seq[k] = n
        ts = ts_recv or ev.ts_recv or time.time_ns()
        return Envelope(ev.source, ev.stream, self.session, n, ts, ev.content_type, __version__)

    def headers(self, ev: RawEvent, ts_recv: int | None = None) -> list[tuple[str, bytes]]:
        return self.envelope(ev, ts_recv).to_headers()


def total_events(events: list[RawEvent]) -> int:
    return sum(e.events for e in events)


def frames_cycle(vendors: tuple[str, ...] = ("binance", "coinbase")) -> Iterator[bytes]:
    """Recorded frames of the given vendors, interleaved, forever (recorded-frame-sized payloads)."""
    frames = [f for v in vendors for f in recorded_frames(v)]
    return itertools.cycle(frames)
