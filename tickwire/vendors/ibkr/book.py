"""Per-exchange books of the TWS parser state: market-depth rows by position, top-of-book ticks.

Market depth (``updateMktDepth`` / ``updateMktDepthL2``) addresses rows by position per side with TWS
semantics: operation 0 inserts a row at ``position`` and shifts the rows at and below it down, 1 replaces
the row at ``position``, 2 deletes it and shifts the rows below it up. A row is (market maker, price,
size); several rows may share a price (different market makers). Rows per side are bounded by
``MAX_ROWS`` (an insert that overflows drops the last row, as a depth-limited book does).

Book state is keyed by (symbol, exchange); a reset (1101 data lost, 2103 farm broken, 317 depth reset)
drops the keys of its scope so the re-sent depth builds a fresh book.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tickwire.contract.parser import ParseError
from tickwire.contract.records import Level

MAX_ROWS = 64
INSERT, UPDATE, DELETE = 0, 1, 2
ASK, BID = 0, 1


@dataclass(slots=True)
class Row:
    mm: str
    price: int
    size: int


@dataclass(slots=True)
class DepthBook:
    bids: list[Row] = field(default_factory=list)
    asks: list[Row] = field(default_factory=list)

    def apply(self, position: int, operation: int, side: int, row: Row) -> None:
        """Apply one depth message; a position or operation that does not fit raises (state unchanged)."""
        if side not in (ASK, BID):
            raise ParseError(f"depth side {side} is neither 0 (ask) nor 1 (bid)")
        rows = self.bids if side == BID else self.asks
        if position < 0:
            raise ParseError(f"depth position {position} < 0")
        if operation == INSERT:
            if position > len(rows):
                raise ParseError(f"depth insert at position {position} beyond {len(rows)} rows")
            rows.insert(position, row)
            del rows[MAX_ROWS:]
        elif operation in (UPDATE, DELETE):
            if position >= len(rows):
                raise ParseError(f"depth operation {operation} at missing position {position}")
            if operation == UPDATE:
                rows[position] = row
            else:
                del rows[position]
        else:
            raise ParseError(f"depth operation {operation} is not 0/1/2")

    def levels(self) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        return _levels(self.bids), _levels(self.asks)


def _levels(rows: list[Row]) -> tuple[Level, ...]:
    """Rows in position order -> price levels: sizes of rows at one price summed, count = rows."""
    sizes: dict[int, int] = {}
    counts: dict[int, int] = {}
    for r in rows:
        sizes[r.price] = sizes.get(r.price, 0) + r.size
        counts[r.price] = counts.get(r.price, 0) + 1
    return tuple(Level(p, s, counts[p]) for p, s in sizes.items())


@dataclass(slots=True)
class TopBook:
    """Top of book of one exchange from tickPrice/tickSize (the fallback without depth)."""

    bid: int = 0
    bid_size: int = 0
    ask: int = 0
    ask_size: int = 0

    def levels(self) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        bids = (Level(self.bid, self.bid_size),) if self.bid > 0 else ()
        asks = (Level(self.ask, self.ask_size),) if self.ask > 0 else ()
        return bids, asks


@dataclass(slots=True)
class IbkrState:
    depth: dict[tuple[str, str], DepthBook] = field(default_factory=dict)
    tops: dict[tuple[str, str], TopBook] = field(default_factory=dict)
    resets: int = 0
    controls: int = 0

    def reset(self, symbol: str, exchange: str) -> list[str]:
        """Drop the books of a scope ("" = any); returns the symbols that had a book there."""
        hit: set[str] = set()
        for books in (self.depth, self.tops):
            for key in [
                k for k in books if (not symbol or k[0] == symbol) and (not exchange or k[1] == exchange)
            ]:
                del books[key]
                hit.add(key[0])
        self.resets += 1
        return sorted(hit)
