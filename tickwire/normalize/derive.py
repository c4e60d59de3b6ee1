"""Records the normalizer derives from a raw record's validated records: minute bars rolled up from vendor
5 s bars (``rollup``) and the aggregated NBBO across per-venue books (``nbbo``).

Which sources get which comes from the registry rows (``VendorSpec.bar_rollup`` / ``venue_books``). The
state lives in the partition's store (one key per source and symbol, ``m|`` and ``n|``), written as it
changes, so it is checkpointed and rolled back with the changelog like bar and dedupe state; an
in-memory cache per (topic, partition, source) is rebuilt from the store after ``forget``.

A derived record carries the provenance of the raw record that made it (stream, session, seq) with
``sub_seq`` = ``DERIVED_SUB_SEQ`` + the sub_seq of the record it came from: never the identity of a record
the parser made (a minute bar and the 5 s bar that closed it are both ``Bar``s of one raw record), so
identity-based dedupe downstream (Redis windows, JetStream ``Nats-Msg-Id``) keeps both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from tickwire.contract.records import Bar, BookUpdate, Record
from tickwire.normalize import nbbo, rollup
from tickwire.normalize.state import PartitionStore

T = TypeVar("T")
DERIVED_SUB_SEQ = 1 << 16
Cache = dict[tuple[str, int, str], dict[str, Any]]


@dataclass(slots=True)
class Derived:
    rollup_sources: frozenset[str] = frozenset()
    nbbo_sources: frozenset[str] = frozenset()
    late_bars: int = 0  # 5 s bars that came after their minute closed
    _cache: Cache = field(default_factory=dict)

    prefixes = (rollup.PREFIX, nbbo.PREFIX)

    def derive(
        self, tp: tuple[str, int], st: PartitionStore, source: str, records: Iterable[Record]
    ) -> list[Record]:
        out: list[Record] = []
        roll, agg = source in self.rollup_sources, source in self.nbbo_sources
        if not (roll or agg):
            return out
        for r in records:
            if roll and isinstance(r, Bar) and r.timeframe == "5s":
                k = rollup.key(source, r.symbol)
                bars = self._get(tp, st, k, rollup.SymbolBars)
                step = rollup.RollupStep()
                rollup.add(bars, r, step)
                self.late_bars += step.late
                out.extend(step.closed)
                st.put(k, msgspec.json.encode(bars))
            elif agg and isinstance(r, BookUpdate):
                k = nbbo.key(source, r.symbol)
                state = self._get(tp, st, k, nbbo.SymbolNbbo)
                before = (state.tops.get(r.venue or ""), state.last)
                q = nbbo.on_book(state, r)
                if q is not None:
                    out.append(q)
                if (state.tops.get(r.venue or ""), state.last) != before:
                    st.put(k, msgspec.json.encode(state))
        return [msgspec.structs.replace(r, sub_seq=DERIVED_SUB_SEQ + r.sub_seq) for r in out]

    def flush(self, tp: tuple[str, int], st: PartitionStore, source: str) -> list[Record]:
        """The source's session ended: its open minute windows in this partition close now."""
        out: list[Record] = []
        if source not in self.rollup_sources:
            return out
        for k, _ in st.items(rollup.key(source, "")):
            bars = self._get(tp, st, k, rollup.SymbolBars)
            closed = rollup.flush(bars)
            if closed:
                out.extend(closed)
                st.put(k, msgspec.json.encode(bars))
        return [msgspec.structs.replace(r, sub_seq=DERIVED_SUB_SEQ + r.sub_seq) for r in out]

    def reset(self, tp: tuple[str, int], st: PartitionStore, source: str, symbols: Iterable[str]) -> None:
        """Book reset of ``symbols`` (a parser's ``resync``): their venue tops are dropped."""
        if source not in self.nbbo_sources:
            return
        for sym in symbols:
            k = nbbo.key(source, sym)
            if st.get(k) is None and k.decode() not in self._cache.get((*tp, source), {}):
                continue
            state = self._get(tp, st, k, nbbo.SymbolNbbo)
            nbbo.reset(state)
            st.put(k, msgspec.json.encode(state))

    def forget(self, topic: str, partition: int) -> None:
        for ck in [ck for ck in self._cache if ck[0] == topic and ck[1] == partition]:
            del self._cache[ck]

    def _get(self, tp: tuple[str, int], st: PartitionStore, k: bytes, typ: type[T]) -> T:
        source = k.split(b"|", 2)[1].decode()
        states = self._cache.setdefault((tp[0], tp[1], source), {})
        name = k.decode()
        state = states.get(name)
        if state is None:
            raw = st.get(k)
            state = msgspec.json.decode(raw, type=typ) if raw is not None else typ()
            states[name] = state
        result: T = state
        return result


def build_derived(
    rollup_sources: frozenset[str] | None = None, nbbo_sources: frozenset[str] | None = None
) -> Derived:
    """From the registry rows unless given."""
    from tickwire import vendors

    specs = vendors.specs().values()
    return Derived(
        rollup_sources=(
            rollup_sources if rollup_sources is not None else frozenset(s.name for s in specs if s.bar_rollup)
        ),
        nbbo_sources=(
            nbbo_sources if nbbo_sources is not None else frozenset(s.name for s in specs if s.venue_books)
        ),
    )
