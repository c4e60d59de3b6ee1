"""The fuzz loop: mutated raw records through ``parser.parse`` and the full ``Pipeline.process`` path.

Each input is a mutation of a seed (a recorded or fixture raw payload with its envelope), sometimes with
the envelope's receive clock moved. Counted per input:

* the parser alone: records, control, parse error by class, any other exception by class;
* the pipeline: ok / control / duplicate / DLQ by error class, and exceptions that ESCAPED it;
* CPU time of both over the budget (``budget_s`` plus ``budget_s_per_mb`` per MB of payload), garbage
  collector pauses excluded (they scan the whole heap, whichever input triggers them; reported apart);
* floats anywhere in a parsed record (amounts are ints in 1e-9 units);
* invariant violations of every published record, read back from its Avro encoding and checked by an
  oracle independent of the pipeline's own checks (symbol grammar, time window against the receive
  clock, amount range and sign, provenance).

Findings keep their first example (payload prefix) for the report. Vendor-neutral: the seeds say which
parser (``Seed.source``) and content type (``Seed.env.content_type``) apply.
"""

from __future__ import annotations

import gc
import resource
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from tickwire import vendors
from tickwire.contract.codec import Codec
from tickwire.contract.envelope import Envelope
from tickwire.contract.exact import MAX_ABS
from tickwire.contract.records import Bar, BookUpdate, Instrument, Quote, Trade
from tickwire.contract.symbols import SYMBOL_PATTERNS
from tickwire.fuzz.mutate import Mutator
from tickwire.normalize.config import NormalizerSettings
from tickwire.normalize.pipeline import Pipeline, RawMessage, build_pipeline
from tickwire.normalize.sizes import entries
from tickwire.normalize.validate import TIMEFRAME_NS, TimeWindow

EXIT = (KeyboardInterrupt, SystemExit, GeneratorExit)
TS_MIN = 946_684_800_000_000_000
MARKET = (Trade, Quote, Bar, BookUpdate, Instrument)
_PRICES = ("price", "bid_price", "ask_price", "open", "high", "low", "close", "vwap", "strike", "tick_size")
_SIZES = ("size", "bid_size", "ask_size", "volume", "multiplier")
_EXAMPLE_BYTES = 300


@dataclass(frozen=True, slots=True)
class Seed:
    source: str
    payload: bytes
    env: Envelope


@dataclass
class Report:
    inputs: int = 0
    parser: Counter[str] = field(default_factory=Counter)
    pipeline: Counter[str] = field(default_factory=Counter)
    escaped: Counter[str] = field(default_factory=Counter)
    over_budget: int = 0
    float_amounts: int = 0
    violations: Counter[str] = field(default_factory=Counter)
    examples: dict[str, bytes] = field(default_factory=dict)
    by_source: Counter[str] = field(default_factory=Counter)
    max_cpu_s: float = 0.0  # CPU of one input, garbage collection pauses excluded
    max_gc_pause_s: float = 0.0
    elapsed_s: float = 0.0
    peak_rss_mb: float = 0.0
    state_entries: dict[str, int] = field(default_factory=dict)

    def failures(self) -> int:
        """Escaped exceptions + inputs over budget + floats + invariant violations: 0 is the bar."""
        return (
            sum(self.escaped.values()) + self.over_budget + self.float_amounts + sum(self.violations.values())
        )

    def merge(self, other: Report) -> None:
        self.inputs += other.inputs
        for mine, theirs in (
            (self.parser, other.parser),
            (self.pipeline, other.pipeline),
            (self.escaped, other.escaped),
            (self.violations, other.violations),
            (self.by_source, other.by_source),
        ):
            mine.update(theirs)
        self.over_budget += other.over_budget
        self.float_amounts += other.float_amounts
        for k, v in other.examples.items():
            self.examples.setdefault(k, v)
        self.max_cpu_s = max(self.max_cpu_s, other.max_cpu_s)
        self.max_gc_pause_s = max(self.max_gc_pause_s, other.max_gc_pause_s)
        self.elapsed_s += other.elapsed_s
        self.peak_rss_mb = max(self.peak_rss_mb, other.peak_rss_mb)
        self.state_entries = other.state_entries or self.state_entries

    def render(self) -> str:
        rate = self.inputs / self.elapsed_s if self.elapsed_s else 0.0
        lines = [
            f"inputs {self.inputs:,} in {self.elapsed_s:.1f} s ({rate:,.0f}/s),"
            f" peak RSS {self.peak_rss_mb:.0f} MB, max CPU per input {self.max_cpu_s * 1000:.1f} ms"
            f" (GC pauses apart: max {self.max_gc_pause_s * 1000:.0f} ms)",
            f"escaped exceptions {sum(self.escaped.values())} {dict(self.escaped)}",
            f"over time budget {self.over_budget}",
            f"floats in amounts {self.float_amounts}",
            f"invariant violations {sum(self.violations.values())} {dict(self.violations)}",
            "by source: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.by_source.items())),
            "pipeline outcomes:",
            *(f"  {k:<40} {v:>10,}" for k, v in self.pipeline.most_common()),
            "parser alone:",
            *(f"  {k:<40} {v:>10,}" for k, v in self.parser.most_common()),
            "state entries at the end: "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(self.state_entries.items())),
        ]
        for k, v in self.examples.items():
            lines.append(f"example {k}: {v!r}")
        return "\n".join(lines)


def floats_in(r: Any) -> int:
    """Amounts of a parsed record that are not ints (prices, sizes, book levels)."""
    n = sum(1 for f in (*_PRICES, *_SIZES) if type(getattr(r, f, None)) not in (int, type(None)))
    for lv in (*getattr(r, "bids", ()), *getattr(r, "asks", ())):
        n += type(lv.price) is not int or type(lv.size) is not int
    return n


def violations(r: Any, source: str, clock_ns: int, window: TimeWindow) -> list[str]:
    """The canonical invariants a published market record must hold (an oracle of its own)."""
    if not isinstance(r, MARKET):
        return []
    out: list[str] = []
    pattern = SYMBOL_PATTERNS.get(r.asset_class)
    if pattern is None or not r.symbol.isascii() or pattern.fullmatch(r.symbol) is None or len(r.symbol) > 64:
        out.append("symbol_grammar")
    if r.source != source:
        out.append("provenance")
    if not TS_MIN <= r.ts_recv <= clock_ns + window.ahead_ns:
        out.append("ts_recv_vs_clock")
    lo = TS_MIN if isinstance(r, Instrument) else r.ts_recv - window.behind_ns
    if isinstance(r, Bar):
        lo -= TIMEFRAME_NS.get(r.timeframe, 0)
    if not max(lo, TS_MIN) <= r.ts_event <= r.ts_recv + window.ahead_ns:
        out.append("ts_event_window")
    for name in (*_PRICES, *_SIZES):
        v = getattr(r, name, None)
        if v is None:
            continue
        if type(v) is not int or abs(v) > MAX_ABS:
            out.append(f"amount_range:{name}")
        elif name in _SIZES and v < 0:
            out.append(f"negative:{name}")
    if isinstance(r, BookUpdate):
        for lv in (*r.bids, *r.asks):
            if lv.size < 0 or abs(lv.price) > MAX_ABS or abs(lv.size) > MAX_ABS:
                out.append("level_range")
                break
    if isinstance(r, Trade) and r.price <= 0 and r.asset_class != "future":
        out.append("trade_price_not_positive")
    return out


class _GcClock:
    """CPU seconds spent in the garbage collector: its pauses scan the whole heap, whichever input
    happens to trigger them, so they are taken out of the per-input budget (and reported apart)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.max_pause = 0.0
        self._start = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.thread_time()
        else:
            pause = time.thread_time() - self._start
            self.total += pause
            self.max_pause = max(self.max_pause, pause)

    def close(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)


class Fuzzer:
    def __init__(
        self,
        seeds: Sequence[Seed],
        *,
        seed: int = 0,
        budget_s: float = 0.25,  # CPU s per input; a GC pass of a 200 MB heap takes ~0.1 s
        budget_s_per_mb: float = 0.25,
        window: TimeWindow | None = None,
    ) -> None:
        if not seeds:
            raise ValueError("no fuzz seeds")
        self.seeds = list(seeds)
        self.mutator = Mutator(seed)
        self.rng = self.mutator.rng
        self.codec = Codec()
        self.window = window or TimeWindow()
        self.pipeline: Pipeline = build_pipeline(NormalizerSettings.load(), self.codec)
        self.parsers = {s.source: vendors.get_parser(s.source) for s in self.seeds}
        self.states = {src: p.new_state(None) for src, p in self.parsers.items()}
        self.budget_s, self.budget_s_per_mb = budget_s, budget_s_per_mb
        self._seq: Counter[tuple[str, str]] = Counter()
        self._clock: dict[str, int] = {}
        self._offset = 0
        self.gc_clock = _GcClock()
        self._by_source: dict[str, list[Seed]] = {}
        for s in self.seeds:
            self._by_source.setdefault(s.source, []).append(s)
        self._warm()

    def _warm(self) -> None:
        """Feed every seed once unmutated (metadata REST answers, book snapshots), not counted."""
        for s in self.seeds:
            self.run_one(s, s.payload, s.env, Report())

    def inputs(self, n: int) -> Iterator[tuple[Seed, bytes, Envelope]]:
        r = self.rng
        sources = sorted(self._by_source)
        for _ in range(n):
            group = self._by_source[sources[r.randrange(len(sources))]]  # every parser equally often
            seed = group[r.randrange(len(group))]
            other = group[r.randrange(len(group))].payload
            payload = self.mutator.mutate(seed.payload, seed.env.content_type, other)
            env = seed.env
            if r.random() < 0.05:  # the receive clock moved: days off, hours off, the other direction
                shift = r.choice((-3, -1, 1, 3)) * r.choice((60, 3_600, 82_800, 86_400 * 2)) * 10**9
                env = msgspec.structs.replace(env, ts_recv=max(0, env.ts_recv + shift))
            yield seed, payload, env

    def run(self, n: int) -> Report:
        rep = Report()
        t0 = time.monotonic()
        for seed, payload, env in self.inputs(n):
            self.run_one(seed, payload, env, rep)
        rep.elapsed_s = time.monotonic() - t0
        rep.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rep.state_entries = self.state_sizes()
        rep.max_gc_pause_s = max(rep.max_gc_pause_s, self.gc_clock.max_pause)
        return rep

    def state_sizes(self) -> dict[str, int]:
        p = self.pipeline
        return {
            "parser_alone": sum(entries(s) for s in self.states.values()),
            "pipeline_parser": sum(entries(s) for st in p.parser_states.values() for s in st.values()),
            "stores": sum(len(st.items()) for st in p.stores.values()),
        }

    def run_one(self, seed: Seed, payload: bytes, env: Envelope, rep: Report) -> None:
        rep.inputs += 1
        rep.by_source[seed.source] += 1
        key = (env.source, env.stream)
        self._seq[key] += 1
        env = msgspec.structs.replace(env, seq=self._seq[key])
        clock = self._clock[env.source] = max(self._clock.get(env.source, 0), env.ts_recv)
        t0 = time.thread_time()
        gc0 = self.gc_clock.total
        self._parse_alone(seed.source, payload, env, rep)
        self._offset += 1
        msg = RawMessage(f"{env.source}.raw", 0, self._offset, b"k", payload, env.to_headers())
        try:
            res = self.pipeline.process(msg)
        except BaseException as exc:
            if isinstance(exc, EXIT):
                raise
            self._finding(rep, rep.escaped, type(exc).__name__, payload)
            return
        cpu = time.thread_time() - t0 - (self.gc_clock.total - gc0)
        rep.max_cpu_s = max(rep.max_cpu_s, cpu)
        if cpu > self.budget_s + self.budget_s_per_mb * len(payload) / 1e6:
            rep.over_budget += 1
            rep.examples.setdefault(f"over_budget({cpu * 1000:.0f} ms)", payload[:_EXAMPLE_BYTES])
        rep.pipeline[res.status if res.status != "dlq" else f"dlq:{res.error_kind}:{res.error_class}"] += 1
        for o in res.outputs:
            if o.topic.endswith(".dlq") or o.topic.endswith("gaps"):
                continue
            try:
                rec = self.codec.decode(o.value)
            except Exception as exc:
                self._finding(rep, rep.violations, f"undecodable_output:{type(exc).__name__}", payload)
                continue
            for v in violations(rec, env.source, clock, self.window):
                self._finding(rep, rep.violations, f"{type(rec).__name__}:{v}", payload)

    def _parse_alone(self, source: str, payload: bytes, env: Envelope, rep: Report) -> None:
        try:
            out = self.parsers[source].parse(payload, env, self.states[source])
        except BaseException as exc:
            if isinstance(exc, EXIT):
                raise
            kind = "parse_error" if isinstance(exc, ValueError) else "raised"
            rep.parser[f"{kind}:{type(exc).__name__}"] += 1
            if kind == "raised":
                rep.examples.setdefault(f"parser raised {type(exc).__name__}", payload[:_EXAMPLE_BYTES])
            return
        rep.parser["records" if out.records else "control" if out.control else "empty"] += 1
        n = sum(floats_in(r) for r in out.records)
        if n:
            rep.float_amounts += n
            rep.examples.setdefault("float_amount", payload[:_EXAMPLE_BYTES])

    @staticmethod
    def _finding(rep: Report, counter: Counter[str], what: str, payload: bytes) -> None:
        counter[what] += 1
        rep.examples.setdefault(what, payload[:_EXAMPLE_BYTES])
