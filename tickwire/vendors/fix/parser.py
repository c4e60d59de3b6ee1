"""FIX 4.4 market data (one raw record = one FIX message, bytes as received) -> canonical fx records.

- **W** SnapshotFullRefresh -> one ``BookUpdate`` (snapshot=True; bids high to low, asks low to high,
  equal prices summed) and, when both sides are present, a top-of-book ``Quote``. Symbol from the top-level
  55. A W restarts the (MDReqID, symbol) book state and clears its resync flag.
- **X** IncrementalRefresh -> one record per 268 entry (``sub_seq`` = entry index): 269=0/1 ->
  ``BookUpdate`` (snapshot=False) with the level's new size, 0 for 279=2 delete; 269=2 -> ``Trade``
  (aggressor unknown: an LP does not say). In 4.4 the Symbol (55) is **inside each entry**, so one X may
  carry several symbols; an entry without 55 falls back to the symbol its MDReqID's snapshot named.
  Entry ids (278) are remembered per MDReqID: a change/delete without a price (270) takes the price of
  the entry it names (278 or 280); a change that moves an entry to a new price also removes the old
  level. An entry that names an id never seen, without a price, breaks the book: one ``Gap``
  (``book_resync``) and the symbol in ``resync`` until its next W.
- Event time: the entry's MDEntryDate (272) + MDEntryTime (273), not SendingTime (52); 52's date only
  completes a 273 without 272, and 52 stands in only when an entry has no 273 at all.
- Amounts: the decimal text of 270/271, never a float. ``first_update_id``/``last_update_id`` carry the
  message's MsgSeqNum (34), the session's own sequence (gaps in it are detected by the producer).
- Y, session messages (A, 0-5) and other message types the LP may send are control frames.

Symbols: ``EUR/USD`` stays, ``EURUSD`` / ``EUR-USD`` -> ``EUR/USD``. venue: the LP's SenderCompID (49).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from tickwire.contract.book import check_ts
from tickwire.contract.envelope import Envelope
from tickwire.contract.exact import AmountError, parse_units
from tickwire.contract.parser import ParseError, ParseOutput, record_base, seq_gap
from tickwire.contract.records import BookUpdate, Level, Quote, Record, Trade
from tickwire.contract.symbols import SYMBOL_PATTERNS
from tickwire.vendors.fix.codec import FixFrameError, FixMessage, Framer, decode
from tickwire.vendors.fix.messages import MDEntry, WireError, read_incremental, read_snapshot

CONTROL_TYPES = frozenset({"Y", "A", "0", "1", "2", "3", "4", "5", "j", "h"})
_NS_PER_DAY = 86_400 * 10**9


@dataclass(slots=True)
class _Req:
    symbol: str | None = None  # the W's top-level symbol (an MDReqID per symbol is the usual layout)
    ids: dict[str, tuple[str, int]] = field(default_factory=dict)  # 278 -> (269 side, price units)


@dataclass(slots=True)
class FixState:
    reqs: dict[str, _Req] = field(default_factory=dict)  # MDReqID -> book state
    needs_resync: set[str] = field(default_factory=set)  # canonical symbols until their next W

    def req(self, md_req_id: str | None) -> _Req:
        return self.reqs.setdefault(md_req_id or "", _Req())


def fx_symbol(raw: str) -> str:
    s = raw.strip().upper()
    if len(s) == 6 and s.isalpha():
        s = f"{s[:3]}/{s[3:]}"
    elif len(s) == 7 and s[3] in "-_/":
        s = f"{s[:3]}/{s[4:]}"
    if not SYMBOL_PATTERNS["fx"].match(s):
        raise ParseError(f"not an FX pair: {raw!r}")
    return s


def _units(v: str | None, what: str) -> int:
    if v is None:
        raise ParseError(f"{what} missing")
    try:
        n = parse_units(v)
    except AmountError as exc:
        raise ParseError(f"{what}: {exc}") from None
    if n < 0 and what.endswith("(271)"):
        raise ParseError(f"{what}: negative {v!r}")
    return n


def _time_of_day_ns(t: str) -> int:
    hh, mm, rest = t[0:2], t[3:5], t[6:]
    ss, _, frac = rest.partition(".")
    if t[2] != ":" or t[5] != ":" or not (hh + mm + ss).isdigit() or len(ss) != 2:
        raise ValueError(t)
    if frac and (not frac.isdigit() or len(frac) > 9):
        raise ValueError(t)
    h, m, s = int(hh), int(mm), int(ss)
    if h > 23 or m > 59 or s > 60:
        raise ValueError(t)
    return ((h * 60 + m) * 60 + s) * 10**9 + int(frac.ljust(9, "0") or "0")


def _day_ns(d: str) -> int:
    if len(d) != 8 or not d.isdigit():
        raise ValueError(d)
    return (dt.date(int(d[:4]), int(d[4:6]), int(d[6:])) - dt.date(1970, 1, 1)).days * _NS_PER_DAY


def fix_time_ns(date: str | None, time: str | None, sending_time: str | None) -> int:
    """272 UTCDateOnly + 273 UTCTimeOnly -> ns; 52 (``YYYYMMDD-HH:MM:SS[.f]``) fills what is missing."""
    try:
        if time is None:
            if sending_time is None or len(sending_time) < 17 or sending_time[8] != "-":
                raise ValueError(sending_time)
            return _day_ns(sending_time[:8]) + _time_of_day_ns(sending_time[9:])
        if date is None:
            if sending_time is None:
                raise ValueError("no date")
            date = sending_time[:8]
        return _day_ns(date) + _time_of_day_ns(time)
    except (ValueError, IndexError):
        raise ParseError(f"bad FIX time: 272={date!r} 273={time!r} 52={sending_time!r}") from None


class FixParser:
    source = "fix"

    def new_state(self, metadata: Any = None) -> FixState:
        return FixState()

    def parse(self, payload: bytes, env: Envelope, state: FixState) -> ParseOutput:
        frames = Framer()
        if frames.feed(payload) != [payload] or frames.errors:
            raise ParseError(f"not exactly one FIX 4.4 message: {'; '.join(frames.errors) or 'framing'}")
        try:
            msg = decode(payload)
            t = msg.msg_type
            if t == "W":
                return _snapshot(msg, env, state)
            if t == "X":
                return _incremental(msg, env, state)
        except (FixFrameError, WireError) as exc:
            raise ParseError(str(exc)) from None
        if t in CONTROL_TYPES:
            return ParseOutput(control=True)
        raise ParseError(f"unsupported FIX message type {t!r}")


def _base(msg: FixMessage, env: Envelope, symbol: str, ts: int, sub_seq: int) -> dict[str, Any]:
    return record_base(
        env, symbol, "fx", check_ts(ts, env.ts_recv, "ts_event"), venue=msg.get(49), sub_seq=sub_seq
    )


def _snapshot(msg: FixMessage, env: Envelope, state: FixState) -> ParseOutput:
    w = read_snapshot(msg)
    symbol = fx_symbol(w.symbol)
    sent = msg.get(52)
    sides: dict[str, dict[int, int]] = {"0": {}, "1": {}}
    ts = 0
    for e in w.entries:
        if e.entry_type not in sides:
            continue  # trades, opens, closes … in a snapshot are not book levels
        px, qty = _units(e.price, "MDEntryPx (270)"), _units(e.size, "MDEntrySize (271)")
        sides[e.entry_type][px] = sides[e.entry_type].get(px, 0) + qty
        ts = max(ts, fix_time_ns(e.date, e.time, sent))
    if ts == 0:
        ts = fix_time_ns(None, None, sent)
    bids = tuple(Level(p, q) for p, q in sorted(sides["0"].items(), reverse=True))
    asks = tuple(Level(p, q) for p, q in sorted(sides["1"].items()))
    seq = msg.seq
    records: list[Record] = [
        BookUpdate(
            **_base(msg, env, symbol, ts, 0),
            bids=bids,
            asks=asks,
            snapshot=True,
            first_update_id=seq,
            last_update_id=seq,
        )
    ]
    if bids and asks:
        records.append(
            Quote(
                **_base(msg, env, symbol, ts, 1),
                bid_price=bids[0].price,
                bid_size=bids[0].size,
                ask_price=asks[0].price,
                ask_size=asks[0].size,
            )
        )
    state.reqs[w.md_req_id or ""] = _Req(symbol=symbol)
    state.needs_resync.discard(symbol)
    return ParseOutput(records=records)


def _incremental(msg: FixMessage, env: Envelope, state: FixState) -> ParseOutput:
    x = read_incremental(msg)
    req = state.req(x.md_req_id)
    sent = msg.get(52)
    out = ParseOutput()
    for i, e in enumerate(x.entries):
        if e.symbol:
            symbol = fx_symbol(e.symbol)
        elif req.symbol is not None:
            symbol = req.symbol
        else:
            raise ParseError(f"X entry {i} has no Symbol (55) and MDReqID {x.md_req_id!r} no snapshot")
        ts = fix_time_ns(e.date, e.time, sent)
        if e.entry_type == "2":
            if e.action in (None, "0"):
                out.records.append(
                    Trade(
                        **_base(msg, env, symbol, ts, i),
                        price=_units(e.price, "MDEntryPx (270)"),
                        size=_units(e.size, "MDEntrySize (271)"),
                        trade_id=e.entry_id,
                    )
                )
            continue
        if e.entry_type in ("0", "1"):
            rec = _level(msg, env, req, e, symbol, ts, i, state, out)
            if rec is not None:
                out.records.append(rec)
    if not out.records and not out.gaps:
        out.control = True
    return out


def _level(
    msg: FixMessage,
    env: Envelope,
    req: _Req,
    e: MDEntry,
    symbol: str,
    ts: int,
    i: int,
    state: FixState,
    out: ParseOutput,
) -> BookUpdate | None:
    side = e.entry_type
    known = req.ids.get(e.ref_id or "") or req.ids.get(e.entry_id or "")
    if e.price is not None:
        px = _units(e.price, "MDEntryPx (270)")
    elif known is not None and known[0] == side:
        px = known[1]
    else:
        _resync(msg, env, symbol, ts, state, out, f"entry {e.entry_id or e.ref_id!r} unknown and no 270")
        return None
    levels = [Level(px, 0 if e.action == "2" else _units(e.size, "MDEntrySize (271)"))]
    if e.action == "1" and known is not None and known[0] == side and known[1] != px:
        levels.insert(0, Level(known[1], 0))  # the entry moved: its old price level is gone
    for ref in (e.ref_id, e.entry_id):
        if ref:
            req.ids.pop(ref, None)
    if e.action != "2" and e.entry_id:
        req.ids[e.entry_id] = (side, px)
    lv = tuple(levels)
    seq = msg.seq
    return BookUpdate(
        **_base(msg, env, symbol, ts, i),
        bids=lv if side == "0" else (),
        asks=lv if side == "1" else (),
        snapshot=False,
        first_update_id=seq,
        last_update_id=seq,
    )


def _resync(
    msg: FixMessage, env: Envelope, symbol: str, ts: int, state: FixState, out: ParseOutput, why: str
) -> None:
    if symbol in state.needs_resync:
        return
    state.needs_resync.add(symbol)
    out.resync.append(symbol)
    out.gaps.append(
        seq_gap(
            env, symbol, before=None, after=msg.seq, ts_start=ts, ts_end=ts, detail=why, reason="book_resync"
        )
    )


PARSER = FixParser()
