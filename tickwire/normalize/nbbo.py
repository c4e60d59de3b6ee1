"""Aggregated top of book (NBBO) per symbol across its per-venue books: pure and deterministic.

For the sources whose registry row says ``venue_books``: each snapshot ``BookUpdate`` with a venue
replaces that venue's top (best bid = highest bid level with size, best ask = lowest ask level with
size; a side without levels is empty). Diff updates and updates without a venue are not read. After each
change the symbol's NBBO is computed over its venues:

- best bid = the highest venue bid, best ask = the lowest venue ask (0 and size 0 when no venue has one);
- sizes at the best = the SUM of the top sizes of every venue quoting that best price (the liquidity
  available at the NBBO, as a consolidated quote reports it); a venue's deeper levels are not added;
- ``bid_venue`` / ``ask_venue`` = the venues at the best, sorted, joined by ``,`` (e.g. ``ARCA,NSDQ``);
- a crossed NBBO (bid > ask) is flagged by the pipeline's validation (``tw:crossed``, as every crossed
  quote); a locked one (bid == ask) gets ``tw:locked``.

It is published as a canonical ``Quote`` with venue ``NBBO`` and the provenance of the book update that
moved it, only when it changed (prices, sizes or venues) and only while at least one side exists;
``ts_event`` never goes backwards while the receive clock does not (max of the update's time and the last
published one, never past the update's own ``ts_recv``: a replay that restarts the clock is followed, not
stamped in its future). A book reset
(``resync`` symbols of a parser's control output) drops that symbol's venue tops; the re-sent books build
the NBBO again. State per (raw partition, source), one store key per symbol ``n|source|symbol``;
bounded by symbols x venues.
"""

from __future__ import annotations

import msgspec

from tickwire.contract.records import BookUpdate, Quote

VENUE = "NBBO"
LOCKED = "tw:locked"
PREFIX = b"n|"

Top = tuple[int, int, int, int]  # bid, bid size, ask, ask size (0, 0 = side empty)
Nbbo = tuple[int, int, int, int, str | None, str | None]


class SymbolNbbo(msgspec.Struct, kw_only=True):
    tops: dict[str, Top] = msgspec.field(default_factory=dict)  # venue -> its top
    last: Nbbo | None = None
    last_ts: int = 0


def key(source: str, symbol: str) -> bytes:
    return PREFIX + f"{source}|{symbol}".encode()


def venue_top(u: BookUpdate) -> Top:
    bids = [lv for lv in u.bids if lv.size > 0 and lv.price > 0]
    asks = [lv for lv in u.asks if lv.size > 0 and lv.price > 0]
    bid = max(bids, key=lambda lv: lv.price) if bids else None
    ask = min(asks, key=lambda lv: lv.price) if asks else None
    return (
        bid.price if bid else 0,
        bid.size if bid else 0,
        ask.price if ask else 0,
        ask.size if ask else 0,
    )


def aggregate(tops: dict[str, Top]) -> Nbbo:
    bid = max((t[0] for t in tops.values() if t[0] > 0), default=0)
    ask = min((t[2] for t in tops.values() if t[2] > 0), default=0)
    bv = sorted(v for v, t in tops.items() if bid and t[0] == bid)
    av = sorted(v for v, t in tops.items() if ask and t[2] == ask)
    return (
        bid,
        sum(tops[v][1] for v in bv),
        ask,
        sum(tops[v][3] for v in av),
        ",".join(bv) or None,
        ",".join(av) or None,
    )


def on_book(state: SymbolNbbo, u: BookUpdate) -> Quote | None:
    """Apply one venue snapshot; the new NBBO quote when it changed, else None."""
    if not u.snapshot or not u.venue:
        return None
    top = venue_top(u)
    if top == (0, 0, 0, 0):
        state.tops.pop(u.venue, None)
    else:
        state.tops[u.venue] = top
    nb = aggregate(state.tops)
    if nb[0] == 0 and nb[2] == 0:
        state.last = None
        return None
    if nb == state.last:
        return None
    state.last = nb
    state.last_ts = ts = min(max(u.ts_event, state.last_ts), max(u.ts_event, u.ts_recv))
    bid, bsz, ask, asz, bv, av = nb
    return Quote(
        symbol=u.symbol,
        asset_class=u.asset_class,
        source=u.source,
        venue=VENUE,
        stream=u.stream,
        session=u.session,
        seq=u.seq,
        sub_seq=u.sub_seq,
        ts_event=ts,
        ts_recv=u.ts_recv,
        bid_price=bid,
        bid_size=bsz,
        ask_price=ask,
        ask_size=asz,
        bid_venue=bv,
        ask_venue=av,
        conditions=(LOCKED,) if bid and bid == ask else (),
    )


def reset(state: SymbolNbbo) -> None:
    state.tops.clear()
