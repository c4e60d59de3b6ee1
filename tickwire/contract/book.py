"""Vendor-neutral helpers shared by the JSON crypto parsers: update-id continuity and exact value checks.

Two mechanisms, each per key (symbol) and kept in the parser's explicit state:

* ``BookContinuity``: diff-depth books whose diffs carry a range ``[first, last]`` of update ids and whose
  REST snapshots carry one ``last`` id. After a snapshot ``L`` diffs with ``last <= L`` are stale; the first
  applied diff must bridge it (``first <= L + 1 <= last``); afterwards each diff must start at the previous
  ``last + 1``. Before any snapshot only diff-to-diff continuity is checked.
* ``NextId``: a single id that must grow by exactly one (trade ids, full-feed sequence numbers).

A violation returns the hole ``(last_before, first_after)``; the caller turns it into a ``Gap`` record.
After a violation the key is flagged ``needs_resync`` until the next snapshot, and checking goes on from the
violating update, so one hole yields one gap. Other keys are never touched.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import msgspec
import orjson

from tickwire.contract import jsonlimits
from tickwire.contract.envelope import Envelope
from tickwire.contract.exact import UNITS_CACHE, AmountError, int_to_units, parse_units
from tickwire.contract.parser import ParseError, ParseOutput
from tickwire.contract.records import Level

# Keys (symbols) tracked per mechanism. Symbols come from the input: past this many the oldest key is
# forgotten (its next update starts afresh, as after a restart), so made-up symbols cannot grow state.
MAX_KEYS = 50_000


def _make_room(d: dict[str, Any]) -> None:
    if len(d) >= MAX_KEYS:
        del d[next(iter(d))]


class Verdict(Enum):
    OK = "ok"
    STALE = "stale"  # already covered by the snapshot or a previous update: drop it
    GAP = "gap"


@dataclass(slots=True)
class _Book:
    last: int  # last update id applied (or of the snapshot)
    after_snapshot: bool = False  # the next diff is the first one after a snapshot
    needs_resync: bool = False
    ts: int = 0  # ts_event of the last good update, for Gap.ts_start


@dataclass(slots=True)
class Check:
    verdict: Verdict
    last_before: int | None = None
    first_after: int | None = None
    ts_before: int = 0
    # True only when this check moved the key into needs_resync (request the resync once per hole run).
    new_resync: bool = False


@dataclass(slots=True)
class BookContinuity:
    books: dict[str, _Book] = field(default_factory=dict)

    def needs_resync(self, key: str) -> bool:
        b = self.books.get(key)
        return b is not None and b.needs_resync

    def snapshot(self, key: str, last: int, ts: int) -> None:
        if key not in self.books:
            _make_room(self.books)
        self.books[key] = _Book(last=last, after_snapshot=True, ts=ts)

    def is_stale(self, key: str, last: int) -> bool:
        """True when ``diff(key, ..., last, ...)`` would answer STALE; changes nothing."""
        b = self.books.get(key)
        return b is not None and last <= b.last

    def diff(self, key: str, first: int, last: int, ts: int) -> Check:
        """Check a diff covering update ids ``first..last`` (the caller ensures first <= last)."""
        b = self.books.get(key)
        if b is None:
            _make_room(self.books)
            self.books[key] = _Book(last=last, ts=ts)
            return Check(Verdict.OK)
        prev = b.last
        if last <= prev:
            return Check(Verdict.STALE)
        if b.after_snapshot:
            b.after_snapshot = False
            if first <= prev + 1:  # last > prev already holds: the diff bridges the snapshot
                return _ok(b, last, ts)
            return _gap(b, prev, first, last, ts)
        if first == prev + 1:
            return _ok(b, last, ts)
        return _gap(b, prev, first, last, ts)


@dataclass(slots=True)
class NextId:
    last: dict[str, int] = field(default_factory=dict)
    ts: dict[str, int] = field(default_factory=dict)
    needs_resync: set[str] = field(default_factory=set)

    def check(self, key: str, value: int, ts: int) -> Check:
        prev = self.last.get(key)
        if prev is not None and value <= prev:
            return Check(Verdict.STALE)
        ts_before = self.ts.get(key, 0)
        if prev is None and len(self.last) >= MAX_KEYS:
            old = next(iter(self.last))
            del self.last[old]
            self.ts.pop(old, None)
            self.needs_resync.discard(old)
        self.last[key] = value
        self.ts[key] = ts
        if prev is None or value == prev + 1:
            return Check(Verdict.OK)
        new = key not in self.needs_resync
        self.needs_resync.add(key)
        return Check(Verdict.GAP, prev, value, ts_before, new)

    def resynced(self, key: str) -> None:
        self.needs_resync.discard(key)


def _ok(b: _Book, last: int, ts: int) -> Check:
    b.last = last
    b.ts = ts
    return Check(Verdict.OK)


def _gap(b: _Book, prev: int, first: int, last: int, ts: int) -> Check:
    new = not b.needs_resync
    ts_before = b.ts
    b.needs_resync = True
    b.after_snapshot = False
    b.last = last
    b.ts = ts
    return Check(Verdict.GAP, prev, first, ts_before, new)


# --- Exact JSON and value checks shared by the JSON crypto parsers (vendor-neutral) -----------------------

_MIN_TS = 946_684_800_000_000_000  # 2000-01-01T00:00:00Z in ns: anything earlier is a unit/format bug
_MAX_AHEAD = 86_400_000_000_000  # 1 day past ts_recv


class NeedExact(Exception):
    """The fast path decoded a JSON number with a fraction or exponent as a float: decode again exactly."""


def _reject_constant(name: str) -> Any:
    raise ParseError(f"non-finite JSON number {name}")


def loads_fast(payload: bytes) -> Any:
    """orjson keeps JSON strings as str (amounts come as strings); what it refuses takes the exact path."""
    jsonlimits.check(payload)
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return loads_exact(payload)  # e.g. integers beyond 64 bits, which orjson rejects


def loads_exact(payload: bytes | str) -> Any:
    """Fractional JSON numbers stay as their exact text (a str, like vendor amount strings) for
    ``parse_units``; integers become int; NaN/Infinity are rejected."""
    jsonlimits.check(payload)
    try:
        return json.loads(payload, parse_float=str, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, ParseError):
            raise
        raise ParseError(f"not JSON: {exc}") from None


def amount(v: Any, what: str) -> int:
    """A price/size in 1e-9 units from its decimal text (or a JSON integer); never through float."""
    try:
        if isinstance(v, str):
            return parse_units(v)
        if isinstance(v, int) and not isinstance(v, bool):
            return int_to_units(v)
    except AmountError as exc:
        raise ParseError(f"{what}: {exc}") from None
    if isinstance(v, float):
        raise NeedExact(what)
    raise ParseError(f"{what}: expected a decimal string, got {type(v).__name__}")


def size(v: Any, what: str) -> int:
    n = amount(v, what)
    if n < 0:
        raise ParseError(f"{what}: negative {n}")
    return n


_UNITS = UNITS_CACHE  # text -> units of every amount text parse_units has accepted


def size_text(v: str, what: str) -> int:
    """``size`` for a value a typed decoder already knows is a str: a cached text costs one dict hit."""
    n = _UNITS.get(v)
    if n is None or n < 0:
        return size(v, what)  # first sight, or negative: the full path (and its exact error)
    return n


def levels(raw: Any, what: str) -> tuple[Level, ...]:
    """Book levels given as ``[[price, size], ...]`` (exact decimal text or JSON numbers)."""
    if not isinstance(raw, list):
        raise ParseError(f"{what} is not a list")
    return tuple(Level(size(p, f"{what} price"), size(q, f"{what} size")) for p, q in raw)


def integer(v: Any, what: str) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise ParseError(f"{what}: expected an integer, got {type(v).__name__}")


def text(v: Any, what: str) -> str:
    if isinstance(v, str) and v:
        return v
    raise ParseError(f"{what}: expected a non-empty string, got {v!r}")


def check_ts(ts: int, ts_recv: int, what: str) -> int:
    if ts < _MIN_TS or ts > ts_recv + _MAX_AHEAD:
        raise ParseError(f"{what} {ts} ns outside the sane window (>= 2000-01-01, <= ts_recv + 1 day)")
    return ts


_MALFORMED = (KeyError, TypeError, AttributeError, IndexError, ValueError)


def parse_json(
    payload: bytes,
    env: Envelope,
    state: Any,
    *,
    vendor: str,
    typed: Callable[[Any, Envelope, Any], ParseOutput],
    lenient: Callable[[Any, Envelope, Any], ParseOutput],
    decode: Callable[[bytes], Any] | None = None,
) -> ParseOutput:
    """The JSON vendors' two paths: ``decode`` into typed wire messages (fast; ``None`` or a msgspec
    error = not a well-formed known message), else the generic dict reading with exact numbers, which
    reads what the typed decoder refuses or says why it is malformed. REST answers take the generic path."""
    if decode is not None and not env.stream.startswith("rest."):
        try:
            msg = jsonlimits.decode(decode, payload)
        except msgspec.MsgspecError:
            msg = None
        if msg is not None:
            try:
                return typed(msg, env, state)
            except ParseError:
                raise
            except _MALFORMED as exc:
                raise ParseError(f"malformed {vendor} payload: {type(exc).__name__}: {exc}") from None
    try:
        try:
            return lenient(loads_fast(payload), env, state)
        except NeedExact:  # raised before any state change: safe to run again on exact numbers
            return lenient(loads_exact(payload), env, state)
    except _MALFORMED as exc:
        if isinstance(exc, ParseError):
            raise
        raise ParseError(f"malformed {vendor} payload: {type(exc).__name__}: {exc}") from None
