"""Typed FIX 4.4 market-data messages: what the session sends (V) and what the parser reads (W, X, Y).

Layouts (FIX44.xml, as the QuickFIX/J data dictionary validates them):

- **V** MarketDataRequest: 262 MDReqID, 263 SubscriptionRequestType (0 snapshot, 1 snapshot+updates,
  2 disable previous), 264 MarketDepth, 265 MDUpdateType, group 267 -> 269, group 146 -> 55. 262, 263,
  264, 267 and 146 are required **also when unsubscribing** (263=2), which must reuse the MDReqID of the
  subscription it ends.
- **W** SnapshotFullRefresh: 262, **55 at the top level**, group 268 delimited by 269 (no 278 in 4.4).
- **X** IncrementalRefresh: 262, group 268 delimited by **279**; each entry carries its own Instrument,
  so **55 sits inside every entry** (an X may mix symbols), with 278 MDEntryID and 280 MDEntryRefID.
- **Y** MarketDataRequestReject: 262, 281 MDReqRejReason, 58 Text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from tickwire.vendors.fix.codec import Field, FixMessage

SubscriptionType = Literal["0", "1", "2"]
REJECT_REASONS = {
    "0": "unknown symbol",
    "1": "duplicate MDReqID",
    "2": "insufficient bandwidth",
    "3": "insufficient permissions",
    "4": "unsupported SubscriptionRequestType",
    "5": "unsupported MarketDepth",
    "6": "unsupported MDUpdateType",
    "7": "unsupported AggregatedBook",
    "8": "unsupported MDEntryType",
    "9": "unsupported TradingSessionID",
    "A": "unsupported Scope",
    "B": "unsupported OpenCloseSettlFlag",
    "C": "unsupported MDImplicitDelete",
}


class WireError(ValueError):
    """A W/X/Y message that does not have the FIX 4.4 layout (missing tag, bad group count)."""


@dataclass(frozen=True, slots=True)
class MDRequest:
    """One MarketDataRequest's parameters; the same object builds the subscribe and the unsubscribe."""

    md_req_id: str
    symbols: tuple[str, ...]
    depth: int = 0  # 0 full book, 1 top of book, N levels
    update_type: int = 1  # 0 full refresh, 1 incremental
    entry_types: tuple[str, ...] = ("0", "1")

    def body(self, kind: SubscriptionType) -> list[Field]:
        if not self.symbols or not self.entry_types:
            raise ValueError("a MarketDataRequest needs at least one symbol and one entry type")
        out: list[Field] = [(262, self.md_req_id), (263, kind), (264, str(self.depth))]
        if kind == "1":  # 265 only means something for snapshot+updates
            out.append((265, str(self.update_type)))
        out.append((267, str(len(self.entry_types))))
        out += [(269, t) for t in self.entry_types]
        out.append((146, str(len(self.symbols))))
        out += [(55, s) for s in self.symbols]
        return out

    def subscribe(self) -> list[Field]:
        return self.body("1")

    def unsubscribe(self) -> list[Field]:
        """263=2 with the **original** MDReqID and every required field and group."""
        return self.body("2")


@dataclass(frozen=True, slots=True)
class MDEntry:
    """One 268 entry, amounts and times kept as their wire text."""

    entry_type: str  # 269: 0 bid, 1 offer, 2 trade, ...
    action: str | None = None  # 279 (X only): 0 new, 1 change, 2 delete
    entry_id: str | None = None  # 278 (X only in 4.4)
    ref_id: str | None = None  # 280
    symbol: str | None = None  # 55 (X: per entry)
    price: str | None = None  # 270
    size: str | None = None  # 271
    date: str | None = None  # 272 UTCDateOnly YYYYMMDD
    time: str | None = None  # 273 UTCTimeOnly HH:MM:SS[.sss…]
    position: str | None = None  # 290 MDEntryPositionNo
    count: str | None = None  # 346 NumberOfOrders


@dataclass(frozen=True, slots=True)
class Snapshot:
    md_req_id: str | None
    symbol: str
    entries: tuple[MDEntry, ...]


@dataclass(frozen=True, slots=True)
class Incremental:
    md_req_id: str | None
    entries: tuple[MDEntry, ...]


@dataclass(frozen=True, slots=True)
class Reject:
    md_req_id: str
    reason: str | None
    text: str | None

    @property
    def reason_text(self) -> str:
        return REJECT_REASONS.get(self.reason or "", f"reason {self.reason!r}")


_ENTRY_TAGS = {269: "entry_type", 279: "action", 278: "entry_id", 280: "ref_id", 55: "symbol", 270: "price"}
_ENTRY_TAGS |= {271: "size", 272: "date", 273: "time", 290: "position", 346: "count"}


def _body(msg: FixMessage) -> Sequence[Field]:
    """The fields after the standard header, without the trailer."""
    fields = msg.fields
    i = 0
    header = {8, 9, 35, 49, 56, 34, 52, 43, 97, 122, 115, 128, 50, 57, 142, 143, 116, 129, 144, 145, 347, 369}
    while i < len(fields) and fields[i][0] in header:
        i += 1
    end = len(fields) - 1 if fields and fields[-1][0] == 10 else len(fields)
    return fields[i:end]


def _entries(body: Sequence[Field], delimiter: int) -> tuple[list[Field], list[MDEntry]]:
    """Split the 268 group (the last group of W and X) into entries; returns (fields before it, entries)."""
    idx = next((i for i, (t, _) in enumerate(body) if t == 268), None)
    if idx is None:
        raise WireError("NoMDEntries (268) missing")
    count_text = body[idx][1]
    if not count_text.isdigit():
        raise WireError(f"NoMDEntries (268) is not a count: {count_text!r}")
    groups: list[dict[str, str]] = []
    for tag, value in body[idx + 1 :]:
        if tag == delimiter:
            groups.append({})
        elif not groups:
            raise WireError(f"268 entry does not start with its delimiter {delimiter} (found {tag})")
        name = _ENTRY_TAGS.get(tag)
        if name is not None and name not in groups[-1]:
            groups[-1][name] = value
    if len(groups) != int(count_text):
        raise WireError(f"NoMDEntries (268) says {count_text}, found {len(groups)} entries")
    entries = []
    for g in groups:
        if "entry_type" not in g:
            raise WireError("268 entry without MDEntryType (269)")
        entries.append(MDEntry(**g))
    return list(body[:idx]), entries


def _first(fields: Iterable[Field], tag: int) -> str | None:
    return next((v for t, v in fields if t == tag), None)


def read_snapshot(msg: FixMessage) -> Snapshot:
    head, entries = _entries(_body(msg), 269)
    symbol = _first(head, 55)
    if not symbol:
        raise WireError("W without Symbol (55) at the top level")
    return Snapshot(md_req_id=_first(head, 262), symbol=symbol, entries=tuple(entries))


def read_incremental(msg: FixMessage) -> Incremental:
    head, entries = _entries(_body(msg), 279)
    return Incremental(md_req_id=_first(head, 262), entries=tuple(entries))


def read_reject(msg: FixMessage) -> Reject:
    body = _body(msg)
    md_req_id = _first(body, 262)
    if md_req_id is None:
        raise WireError("Y without MDReqID (262)")
    return Reject(md_req_id=md_req_id, reason=_first(body, 281), text=_first(body, 58))
