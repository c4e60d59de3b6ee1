"""The per-message core of the normalizer: raw record in, Kafka records out. No Kafka, no I/O.

``Pipeline.process(msg)`` turns one raw record into the records to publish (canonical records, closed
aggregated bars, gaps) or, when anything about it is wrong, into one DLQ record. The raw record is handled
atomically: either all its canonical records are published or none (the whole raw record goes to the DLQ),
so replaying a DLQ record can never duplicate half of it.

State that must survive restarts (dedupe cursors, open bars, last processed offset, parser state) lives
in one ``PartitionStore`` per raw partition (``tickwire.normalize.state``): the stream runtime's
changelog-backed ``PartitionState`` in the worker, a ``MemoryStore`` offline. Parser state is per raw
partition as well, kept in memory between records and snapshotted into the store by ``checkpoint`` (the
worker calls it before each commit), so a rollback or restart resumes exactly where the commit left.

Offsets and rewinds: the store remembers the last raw offset processed per partition. Under exactly-once
that value is committed atomically with the consumer offset, so a record at or below it can only come
from an operator's offset reset (``tickwire replay offsets``): the partition's dedupe and bar state is
then dropped and the replayed range is normalized afresh (deterministically, as on the first run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from tickwire.contract import errors
from tickwire.contract.dlq import dlq_headers, dlq_topic, replay_origin
from tickwire.contract.envelope import H_SRC_TOPIC, SESSION_END, Envelope, EnvelopeError, Headers
from tickwire.contract.parser import VendorParser
from tickwire.contract.records import Gap, Trade
from tickwire.logs import kv
from tickwire.normalize import dedupe
from tickwire.normalize.bars import BarAggregator, OpenBar, PartitionBars
from tickwire.normalize.derive import Derived, build_derived
from tickwire.normalize.state import (
    MemoryStore,
    PartitionStore,
    dump_parser_state,
    load_parser_state,
    parser_key,
)
from tickwire.normalize.validate import Checks, TimeWindow, final

if TYPE_CHECKING:
    from tickwire.contract.codec import Codec
    from tickwire.normalize.config import NormalizerSettings

log = logging.getLogger(__name__)

# Prebuilt JSON codecs of the per-record state (the offset, the dedupe cursor): no per-call type lookup.
_encode = msgspec.json.Encoder().encode
_decode_int = msgspec.json.Decoder(int).decode
_decode_cursor = msgspec.json.Decoder(dedupe.Cursor).decode
_ROUTES_MAX = 100_000  # cached routes (distinct record types x symbols); cleared when full


class RawMessage(msgspec.Struct, frozen=True):
    """One raw Kafka record, built per record by the worker: a frozen Struct builds ~10x faster than a
    frozen dataclass (whose ``__init__`` goes through ``object.__setattr__`` per field)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers


class Out(msgspec.Struct, frozen=True):
    """One Kafka record to publish. A frozen msgspec Struct: built once per canonical record, and a
    frozen slots dataclass's ``__init__`` (``object.__setattr__`` per field) cost ~6x more."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] | None = None


Status = Literal["ok", "control", "duplicate", "dlq"]


class Result(msgspec.Struct):
    """What one raw record gave (one per raw record: a Struct, built in half a slots dataclass's time)."""

    status: Status = "ok"
    outputs: list[Out] = msgspec.field(default_factory=list)
    error_class: str | None = None
    error_kind: str | None = None  # errors.Kind of a DLQ'd record: bad_input or internal
    late_trades: int = 0
    gaps: int = 0
    crossed: int = 0
    bars: int = 0
    resync: list[str] = msgspec.field(default_factory=list)
    rewound: bool = False


class Pipeline:
    def __init__(
        self,
        *,
        get_parser: Callable[[str], VendorParser],
        encode: Callable[[Any], bytes],
        topic_for: Callable[[Any], str],
        key_for: Callable[[Any], bytes],
        store: MutableMapping[tuple[str, int], PartitionStore] | None = None,
        topic_prefix: str = "",
        bar_sources: frozenset[str] = frozenset(),
        bar_lateness_ns: int = 0,
        seq_gap_sources: frozenset[str] = frozenset(),
        time_window: TimeWindow | None = None,  # event time vs receive time, both directions
        derived: Derived | None = None,  # minute bars from vendor 5 s bars, NBBO of venue books
    ) -> None:
        self.get_parser = get_parser
        self.encode = encode
        self.topic_for = topic_for
        self.key_for = key_for
        # (topic, partition) -> its store, for callers that do not pass one to process() (offline).
        self.stores: MutableMapping[tuple[str, int], PartitionStore] = {} if store is None else store
        self.prefix = topic_prefix
        self.bar_sources = bar_sources
        self.seq_gap_sources = seq_gap_sources
        self.bars = BarAggregator(bar_lateness_ns)
        self.checks = Checks(time_window)  # time window, symbol grammar, Avro integer ranges
        self.derived = Derived() if derived is None else derived
        # (topic, partition) -> source -> parser state: in memory between records, in the store at commit.
        self.parser_states: dict[tuple[str, int], dict[str, Any]] = {}
        self._touched: set[tuple[str, int]] = set()  # partitions whose parser state may have changed
        self._bar_cache: dict[tuple[str, int, str], PartitionBars] = {}
        # (record type, asset class, symbol) -> (prefixed topic, key): routing.topic_for of a canonical
        # record depends on its type and asset class only, key_for on its symbol only.
        self._routes: dict[tuple[type[Any], str, str], tuple[str, bytes]] = {}

    def _route(self, r: Any) -> tuple[str, bytes]:
        """Miss of the route cache: (prefixed topic, key) of canonical record ``r``."""
        if len(self._routes) >= _ROUTES_MAX:
            self._routes.clear()
        hit = self._routes[(type(r), r.asset_class, r.symbol)] = (
            self.prefix + self.topic_for(r),
            self.key_for(r),
        )
        return hit

    def _outs(self, records: list[Any]) -> list[Out]:
        routes, route, enc = self._routes, self._route, self.encode
        return [Out(*(routes.get((type(r), r.asset_class, r.symbol)) or route(r)), enc(r)) for r in records]

    def store_for(self, topic: str, partition: int) -> PartitionStore:
        st = self.stores.get((topic, partition))
        if st is None:
            st = self.stores[(topic, partition)] = MemoryStore()
        return st

    # -- entry point --

    def process(self, msg: RawMessage, store: PartitionStore | None = None) -> Result:
        st = self.store_for(msg.topic, msg.partition) if store is None else store
        res = Result()
        tp = (msg.topic, msg.partition)
        last = st.get(b"o")
        if last is not None and msg.offset <= _decode_int(last):
            self._reset_partition(tp, st)
            res.rewound = True
            log.warning(
                "offset rewind: partition state reset %s", kv(topic=msg.topic, partition=msg.partition)
            )
        # The per-message error boundary (tickwire.contract.errors): bad input and our own bugs become a
        # DLQ record; an outage (errors.InfraError) and a process exit propagate with NO state written
        # (no offset, no dedupe cursor), so the caller's retry sees the record exactly as the first time.
        try:
            hmap = dict(msg.headers or ())  # once for the envelope and the replay origin
            env = Envelope.from_map(hmap)
            if self.prefix + env.source + ".raw" != msg.topic:
                raise EnvelopeError(f"source header {env.source!r} does not belong on topic {msg.topic!r}")
        except BaseException as exc:
            kind = errors.reraise_unhandled(exc)
            st.put(b"o", _encode(msg.offset))
            return self._dlq(msg, exc, res, kind)
        origin = replay_origin(hmap) if H_SRC_TOPIC in hmap else None  # the test spares a call per record
        if origin is not None:
            # A DLQ record re-fed after a fix: it never produced records, so the seq cursor (already past
            # it) does not apply; it is deduped by its original position instead.
            dkey, verdict = b"r|" + origin, None
            duplicate = st.get(dkey) is not None
        else:
            dkey = f"d|{env.source}|{env.stream}|{env.session}".encode()
            raw_cursor = st.get(dkey)
            cursor = None if raw_cursor is None else _decode_cursor(raw_cursor)
            if cursor is None:  # a session's first record here: drop the cursors of ended sessions
                dedupe.retire_sessions(st, env)
            verdict = dedupe.check(
                cursor, env, partition=msg.partition, detect_gaps=env.source in self.seq_gap_sources
            )
            duplicate = verdict.duplicate
        if duplicate:
            st.put(b"o", _encode(msg.offset))
            res.status = "duplicate"
            return res
        gaps: list[Gap] = [verdict.gap] if verdict is not None and verdict.gap is not None else []
        try:
            self._normalize(msg, env, tp, st, gaps, res)
        except BaseException as exc:
            kind = errors.reraise_unhandled(exc)  # an outage: nothing stored, the caller retries
            res.outputs.clear()
            res.status = "ok"
            self._dlq(msg, exc, res, kind)
        # Dedupe state moves only together with this record's outputs (canonical records or its DLQ copy).
        st.put(b"o", _encode(msg.offset))
        st.put(dkey, b"1" if verdict is None else _encode(verdict.cursor))
        # Gaps describe the feed, not this payload: published even when the payload went to the DLQ.
        for g in gaps:
            res.outputs.append(Out(self.prefix + self.topic_for(g), self.key_for(g), self.encode(g)))
        res.gaps = len(gaps)
        return res

    # -- steps --

    def _parser_state(
        self, tp: tuple[str, int], st: PartitionStore, source: str, parser: VendorParser
    ) -> Any:
        states = self.parser_states.get(tp)
        if states is None:
            states = self.parser_states[tp] = {}
        pstate = states.get(source)
        if pstate is None:
            raw = st.get(parser_key(source))
            pstate = None if raw is None else load_parser_state(raw, source)
            if pstate is None:
                pstate = parser.new_state(None)
            states[source] = pstate
        self._touched.add(tp)
        return pstate

    def _normalize(
        self, msg: RawMessage, env: Envelope, tp: tuple[str, int], st: PartitionStore, gaps: list[Gap],
        res: Result,
    ) -> None:  # fmt: skip
        if env.context and env.content_type == "text" and env.context_map().get("kind") == SESSION_END:
            flushed = [final(r) for r in self.derived.flush(tp, st, env.source)]  # open minutes close
            res.outputs.extend(self._outs(flushed))
            res.status = "ok" if flushed else "control"
            return
        parser = self.get_parser(env.source)
        # One parser state per source and raw partition, not per stream: parsers take metadata and book
        # snapshots from sibling streams (REST answers on ``rest.*`` streams that share the partition).
        pstate = self._parser_state(tp, st, env.source, parser)
        out = parser.parse(msg.value or b"", env, pstate)
        if out.gaps:
            gaps.extend(self.checks.check_gap(g) for g in out.gaps)  # encoded after the boundary: check here
        if out.resync:
            res.resync = list(out.resync)
        if out.control and not out.records:
            self.derived.reset(tp, st, env.source, out.resync)
            res.status = "control"
            return
        # Checked before bars: only records that pass move a bar watermark.
        checks = self.checks
        accept, clock, crossed = checks.accept, env.ts_recv, checks.crossed
        records = [accept(r, clock) for r in out.records]
        derived = self.derived.derive(tp, st, env.source, records)  # NBBO, 1 m bars of 5 s bars
        if derived:
            records += [checks.finish(r) for r in derived]
        res.crossed = checks.crossed - crossed
        outs = self._outs(records)
        # Bars only after the whole raw record is known good: a DLQ'd record leaves bar state untouched.
        if env.source in self.bar_sources:
            trades = [r for r in records if isinstance(r, Trade)]
            if trades:
                outs.extend(self._aggregate(tp, st, env.source, trades, res))
        res.outputs.extend(outs)

    def _aggregate(
        self, tp: tuple[str, int], st: PartitionStore, source: str, trades: list[Trade], res: Result
    ) -> list[Out]:
        state = self._load_bars(tp, st, source)
        wm_before = (state.watermark, state.next_close)
        step = self.bars.on_trades(state, trades)
        res.late_trades += step.late
        outs = self._outs(step.closed)
        res.bars = len(outs)
        for sym in step.touched:
            windows = state.bars.get(sym)
            k = f"b|{source}|{sym}".encode()
            if windows:
                st.put(k, msgspec.json.encode(windows))
            elif st.get(k) is not None:
                st.delete(k)
        if (state.watermark, state.next_close) != wm_before:
            st.put(f"w|{source}".encode(), msgspec.json.encode([state.watermark, state.next_close]))
        return outs

    def _load_bars(self, tp: tuple[str, int], st: PartitionStore, source: str) -> PartitionBars:
        ck = (tp[0], tp[1], source)
        state = self._bar_cache.get(ck)
        if state is not None:
            return state
        state = PartitionBars()
        raw_wm = st.get(f"w|{source}".encode())
        if raw_wm is not None:
            state.watermark, state.next_close = msgspec.json.decode(
                raw_wm, type=tuple[int | None, int | None]
            )
            prefix = f"b|{source}|".encode()
            for k, v in st.items(prefix):
                state.bars[k[len(prefix) :].decode()] = msgspec.json.decode(v, type=dict[int, OpenBar])
        self._bar_cache[ck] = state
        return state

    def _reset_partition(self, tp: tuple[str, int], st: PartitionStore) -> None:
        # An operator's offset reset: the replayed range is normalized afresh, parser state included.
        for prefix in (b"d|", b"r|", b"w|", b"b|", b"p|", *self.derived.prefixes):
            for k, _ in st.items(prefix):
                st.delete(k)
        self.forget_partition(*tp)

    def checkpoint(self, topic: str, partition: int, store: PartitionStore | None = None) -> None:
        """Snapshot the partition's parser states into its store (the worker calls this before commit)."""
        tp = (topic, partition)
        if tp not in self._touched:
            return
        self._touched.discard(tp)
        st = self.store_for(topic, partition) if store is None else store
        for source, pstate in self.parser_states.get(tp, {}).items():
            st.put(parser_key(source), dump_parser_state(pstate))

    def forget_partition(self, topic: str, partition: int) -> None:
        """Drop in-memory caches of a partition (revoked, or its cycle rolled back): the store keeps
        the truth and they are rebuilt from it on next use."""
        self.parser_states.pop((topic, partition), None)
        self._touched.discard((topic, partition))
        self.derived.forget(topic, partition)
        for ck in [ck for ck in self._bar_cache if ck[0] == topic and ck[1] == partition]:
            del self._bar_cache[ck]

    def internal_error(self, msg: RawMessage, exc: BaseException) -> Result:
        """Result for a raw record whose processing raised outside the per-message boundary."""
        return self._dlq(msg, exc, Result(), "internal")

    def _dlq(self, msg: RawMessage, exc: BaseException, res: Result, kind: str) -> Result:
        res.status = "dlq"
        res.error_class = type(exc).__name__
        res.error_kind = kind
        headers = dlq_headers(msg.headers, exc, msg.topic, msg.partition, msg.offset, kind)
        res.outputs.append(Out(dlq_topic(msg.topic), msg.key, msg.value or b"", headers))
        where = kv(topic=msg.topic, partition=msg.partition, offset=msg.offset, error=type(exc).__name__)
        if kind == "internal":  # our own bug: loud, with the traceback; the record waits in the DLQ
            log.error("internal error, raw record to DLQ %s", where, exc_info=exc)
        else:
            log.warning("raw record to DLQ %s", where)
        return res


def build_pipeline(s: NormalizerSettings, codec: Codec | None = None) -> Pipeline:
    """The pipeline of a normalizer with settings ``s``: the live worker, ``tickwire parse`` and the
    benchmarks build it here, so offline and online runs share parsers, rules and lateness."""
    from tickwire import vendors
    from tickwire.contract import routing
    from tickwire.contract.codec import Codec

    return Pipeline(
        get_parser=vendors.get_parser,
        encode=(codec or Codec(s.schema_registry_url)).encode,
        topic_for=routing.topic_for,
        key_for=routing.key_for,
        topic_prefix=s.topic_prefix,
        bar_sources=s.bar_source_set(),
        bar_lateness_ns=s.bar_lateness_ms * 1_000_000,
        seq_gap_sources=s.seq_gap_source_set(),
        time_window=TimeWindow(s.event_ahead_ms * 1_000_000, s.event_behind_ms * 1_000_000),
        derived=build_derived(),
    )
