"""The per-message core of the normalizer: raw record in, Kafka records out. No faust, no I/O.

``Pipeline.process(msg)`` turns one raw record into the records to publish (canonical records, closed
aggregated bars, gaps) or, when anything about it is wrong, into one DLQ record. The raw record is handled
atomically: either all its canonical records are published or none (the whole raw record goes to the DLQ),
so replaying a DLQ record can never duplicate half of it.

State that must survive restarts (dedupe cursors, open bars, last processed offset) lives in a
``MutableMapping[str, bytes]`` the caller provides: a faust Table in the app (changelog-backed), a dict
in tests. Parser state (one per source) lives in memory: parsers rebuild it from the feed (e.g.
a book resync) after a restart.

Offsets and rewinds: the store remembers the last raw offset processed per partition. Under exactly-once
that value is committed atomically with the consumer offset, so a record at or below it can only come
from an operator's offset reset (``tickwire replay offsets``): the partition's dedupe and bar state is
then dropped and the replayed range is normalized afresh (deterministically, as on the first run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from tickwire.contract.dlq import dlq_headers, dlq_topic
from tickwire.contract.envelope import Envelope, EnvelopeError, Headers
from tickwire.contract.parser import VendorParser
from tickwire.contract.records import Bar, BookUpdate, Gap, Quote, Record, Trade
from tickwire.logs import kv
from tickwire.normalize import dedupe
from tickwire.normalize.bars import BarAggregator, OpenBar, PartitionBars

log = logging.getLogger(__name__)

TS_MIN = 946_684_800_000_000_000  # 2000-01-01T00:00:00Z in ns
DAY_NS = 86_400_000_000_000
CROSSED = "tw:crossed"  # condition the normalizer adds to a crossed quote (bid > ask, both > 0)


class ValidationError(ValueError):
    """A parsed record violates the canonical invariants."""


@dataclass(frozen=True, slots=True)
class RawMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers


@dataclass(frozen=True, slots=True)
class Out:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] | None = None


Status = Literal["ok", "control", "duplicate", "dlq"]


@dataclass(slots=True)
class Result:
    status: Status = "ok"
    outputs: list[Out] = field(default_factory=list)
    error_class: str | None = None
    late_trades: int = 0
    gaps: int = 0
    crossed: int = 0
    bars: int = 0
    resync: list[str] = field(default_factory=list)
    rewound: bool = False


def validate(r: Record) -> Record:
    """Final checks on a parser's record; returns it (a crossed quote comes back flagged)."""
    if not r.symbol:
        raise ValidationError(f"{type(r).__name__}: empty symbol")
    if not (TS_MIN <= r.ts_event <= r.ts_recv + DAY_NS):
        raise ValidationError(
            f"{type(r).__name__} {r.symbol}: ts_event {r.ts_event} outside [2000-01-01, ts_recv + 1 day]"
        )
    # Futures (calendar spreads, 2020 crude) legitimately trade at zero or below; nothing else does.
    signed = r.asset_class == "future"
    if isinstance(r, Trade):
        if r.size < 0:
            raise ValidationError(f"Trade {r.symbol}: negative size {r.size}")
        if r.price <= 0 and not signed:
            raise ValidationError(f"Trade {r.symbol}: non-positive price {r.price}")
    elif isinstance(r, Quote):
        if r.bid_size < 0 or r.ask_size < 0:
            raise ValidationError(f"Quote {r.symbol}: negative size")
        if (r.bid_price < 0 or r.ask_price < 0) and not signed:
            raise ValidationError(f"Quote {r.symbol}: negative price")
        # Crossed markets happen (fast markets, venues out of sync): keep the quote, flag it visibly.
        if r.bid_price > 0 and r.ask_price > 0 and r.bid_price > r.ask_price and CROSSED not in r.conditions:
            return msgspec.structs.replace(r, conditions=(*r.conditions, CROSSED))
    elif isinstance(r, Bar):
        if r.volume < 0:
            raise ValidationError(f"Bar {r.symbol}: negative volume")
        if not (r.low <= min(r.open, r.close) and max(r.open, r.close) <= r.high):
            raise ValidationError(f"Bar {r.symbol}: open/close outside [low, high]")
    elif isinstance(r, BookUpdate):
        for lv in (*r.bids, *r.asks):
            if lv.size < 0:
                raise ValidationError(f"BookUpdate {r.symbol}: negative level size at {lv.price}")
    return r


def _is_crossed(r: Record) -> bool:
    return isinstance(r, Quote) and CROSSED in r.conditions


class Pipeline:
    def __init__(
        self,
        *,
        get_parser: Callable[[str], VendorParser],
        encode: Callable[[Any], bytes],
        topic_for: Callable[[Any], str],
        key_for: Callable[[Any], bytes],
        store: MutableMapping[str, bytes],
        topic_prefix: str = "",
        bar_sources: frozenset[str] = frozenset(),
        bar_lateness_ns: int = 0,
        seq_gap_sources: frozenset[str] = frozenset(),
    ) -> None:
        self.get_parser = get_parser
        self.encode = encode
        self.topic_for = topic_for
        self.key_for = key_for
        self.store = store
        self.prefix = topic_prefix
        self.bar_sources = bar_sources
        self.seq_gap_sources = seq_gap_sources
        self.bars = BarAggregator(bar_lateness_ns)
        self.parser_states: dict[str, Any] = {}
        self._bar_cache: dict[str, PartitionBars] = {}  # "topic|partition|source" -> open bars

    # -- entry point --

    def process(self, msg: RawMessage) -> Result:
        res = Result()
        tp = f"{msg.topic}|{msg.partition}"
        okey = "o|" + tp
        last = self.store.get(okey)
        if last is not None and msg.offset <= msgspec.json.decode(last, type=int):
            self._reset_partition(tp)
            res.rewound = True
            log.warning(
                "offset rewind: partition state reset %s", kv(topic=msg.topic, partition=msg.partition)
            )
        self.store[okey] = msgspec.json.encode(msg.offset)
        try:
            env = Envelope.from_headers(msg.headers)
            if self.prefix + env.source + ".raw" != msg.topic:
                raise EnvelopeError(f"source header {env.source!r} does not belong on topic {msg.topic!r}")
        except Exception as exc:
            return self._dlq(msg, exc, res)
        dkey = f"d|{tp}|{env.source}|{env.stream}|{env.session}"
        raw_cursor = self.store.get(dkey)
        cursor = None if raw_cursor is None else msgspec.json.decode(raw_cursor, type=dedupe.Cursor)
        verdict = dedupe.check(
            cursor, env, partition=msg.partition, detect_gaps=env.source in self.seq_gap_sources
        )
        if verdict.duplicate:
            res.status = "duplicate"
            return res
        self.store[dkey] = msgspec.json.encode(verdict.cursor)
        gaps: list[Gap] = [verdict.gap] if verdict.gap is not None else []
        try:
            self._normalize(msg, env, tp, gaps, res)
        except Exception as exc:
            res.outputs.clear()
            res.status = "ok"
            self._dlq(msg, exc, res)
        # Gaps describe the feed, not this payload: published even when the payload went to the DLQ.
        for g in gaps:
            res.outputs.append(Out(self.prefix + self.topic_for(g), self.key_for(g), self.encode(g)))
        res.gaps = len(gaps)
        return res

    # -- steps --

    def _normalize(self, msg: RawMessage, env: Envelope, tp: str, gaps: list[Gap], res: Result) -> None:
        parser = self.get_parser(env.source)
        # One parser state per source, not per stream: parsers take metadata and book snapshots from
        # sibling streams (REST answers on ``rest.*`` streams) and apply them to the live stream's symbols.
        pstate = self.parser_states.get(env.source)
        if pstate is None:
            pstate = self.parser_states[env.source] = parser.new_state(None)
        out = parser.parse(msg.value or b"", env, pstate)
        gaps.extend(out.gaps)
        res.resync = list(out.resync)
        if out.control and not out.records:
            res.status = "control"
            return
        records = [validate(r) for r in out.records]
        outs = [Out(self.prefix + self.topic_for(r), self.key_for(r), self.encode(r)) for r in records]
        res.crossed = sum(1 for r in records if _is_crossed(r))
        # Bars only after the whole raw record is known good: a DLQ'd record leaves bar state untouched.
        if env.source in self.bar_sources:
            trades = [r for r in records if isinstance(r, Trade)]
            if trades:
                outs.extend(self._aggregate(tp, env.source, trades, res))
        res.outputs.extend(outs)

    def _aggregate(self, tp: str, source: str, trades: list[Trade], res: Result) -> list[Out]:
        pkey = f"{tp}|{source}"
        state = self._load_bars(pkey)
        touched: set[str] = set()
        outs: list[Out] = []
        wm_before = (state.watermark, state.next_close)
        for t in trades:
            step = self.bars.on_trade(state, t)
            if step.late:
                res.late_trades += 1
            touched |= step.touched
            for bar in step.closed:
                outs.append(Out(self.prefix + self.topic_for(bar), self.key_for(bar), self.encode(bar)))
        res.bars = len(outs)
        for sym in touched:
            windows = state.bars.get(sym)
            k = f"b|{pkey}|{sym}"
            if windows:
                self.store[k] = msgspec.json.encode(windows)
            elif k in self.store:
                del self.store[k]
        if (state.watermark, state.next_close) != wm_before:
            self.store["w|" + pkey] = msgspec.json.encode([state.watermark, state.next_close])
        return outs

    def _load_bars(self, pkey: str) -> PartitionBars:
        state = self._bar_cache.get(pkey)
        if state is not None:
            return state
        state = PartitionBars()
        raw_wm = self.store.get("w|" + pkey)
        if raw_wm is not None:
            state.watermark, state.next_close = msgspec.json.decode(
                raw_wm, type=tuple[int | None, int | None]
            )
            prefix = f"b|{pkey}|"
            for k in [k for k in list(self.store.keys()) if k.startswith(prefix)]:
                state.bars[k[len(prefix) :]] = msgspec.json.decode(self.store[k], type=dict[int, OpenBar])
        self._bar_cache[pkey] = state
        return state

    def _reset_partition(self, tp: str) -> None:
        prefixes = (f"d|{tp}|", f"w|{tp}|", f"b|{tp}|")
        for k in [k for k in list(self.store.keys()) if k.startswith(prefixes)]:
            del self.store[k]
        for pkey in [p for p in self._bar_cache if p.startswith(tp + "|")]:
            del self._bar_cache[pkey]

    def forget_partition(self, topic: str, partition: int) -> None:
        """Drop in-memory caches of a partition (revoked on rebalance); the store keeps the truth."""
        tp = f"{topic}|{partition}"
        for pkey in [p for p in self._bar_cache if p.startswith(tp + "|")]:
            del self._bar_cache[pkey]

    def internal_error(self, msg: RawMessage, exc: BaseException) -> Result:
        """Result for a raw record whose processing raised outside the per-message boundary."""
        return self._dlq(msg, exc, Result())

    def _dlq(self, msg: RawMessage, exc: BaseException, res: Result) -> Result:
        res.status = "dlq"
        res.error_class = type(exc).__name__
        headers = dlq_headers(msg.headers, exc, msg.topic, msg.partition, msg.offset)
        res.outputs.append(Out(dlq_topic(msg.topic), msg.key, msg.value or b"", headers))
        log.warning(
            "raw record to DLQ %s",
            kv(topic=msg.topic, partition=msg.partition, offset=msg.offset, error=type(exc).__name__),
        )
        return res
