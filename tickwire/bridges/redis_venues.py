"""Redis surfaces of sources with per-venue books (registry rows with ``venue_books``, seed 004).

- A ``BookUpdate`` of such a source with a venue is one exchange's book: it is kept and written under
  ``market:{symbol}:{venue}:book`` (the bridge's book key ``"{symbol}:{venue}"``), with ``exchange`` in
  its JSON, and never moves the ticker.
- ``market:{symbol}:ticker`` of such a source follows the normalizer's aggregated quotes (venue
  ``NBBO``) and its trades; its other quotes (e.g. tick-by-tick bid/ask of one routing venue) do not
  move the ticker. Every other source is unchanged.
"""

from __future__ import annotations

from functools import cache

from tickwire.bridges import shapes
from tickwire.contract.records import BookUpdate, Level, Quote

NBBO_VENUE = "NBBO"  # tickwire.normalize.nbbo.VENUE (the bridges do not import a stage)
_MAX_KEYS = 100_000
_venue_keys: dict[str, tuple[str, str]] = {}  # book key -> (symbol, venue), for the book JSON


@cache
def venue_book_sources() -> frozenset[str]:
    from tickwire import vendors

    return frozenset(s.name for s in vendors.specs().values() if s.venue_books)


def book_key(u: BookUpdate) -> str:
    """The bridge's book identity: the symbol, or ``"{symbol}:{venue}"`` for a per-venue book."""
    if not u.venue or u.source not in venue_book_sources():
        return u.symbol
    key = f"{u.symbol}:{u.venue}"
    if key not in _venue_keys:
        if len(_venue_keys) >= _MAX_KEYS:
            _venue_keys.clear()
        _venue_keys[key] = (u.symbol, u.venue)
    return key


def book_json(key: str, bids: list[Level], asks: list[Level], ts_event: int, digits: int = 3) -> bytes:
    symbol, venue = _venue_keys.get(key, (key, None))
    return shapes.book_json(symbol, bids, asks, ts_event, digits, exchange=venue)


def quote_moves_ticker(ticker: shapes.Ticker, q: Quote) -> bool:
    """Apply ``q`` to the symbol's ticker unless its source's ticker follows the NBBO only."""
    if q.venue != NBBO_VENUE and q.source in venue_book_sources():
        return False
    return ticker.apply_quote(*shapes.ticker_from_quote(q))
