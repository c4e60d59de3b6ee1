"""``Checks.accept``'s one-predicate path for trades, quotes and books agrees with the step-by-step checks
(``final(check(r))``) on every boundary of every field they read: same record back, or the same error.

The predicate may only be stricter than the steps (a record it does not clear takes the steps); a record
it clears wrongly would be published although the steps reject it, which this test catches.
"""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec
import pytest

from tickwire.contract.records import BookUpdate, Level, Quote, Record, Trade
from tickwire.normalize.validate import CROSSED, LONG_MAX, TS_MIN, Checks, TimeWindow, ValidationError, final

pytestmark = pytest.mark.unit

NOW = 1_764_633_600 * 10**9
WINDOW = TimeWindow(ahead_ns=5 * 10**9, behind_ns=3600 * 10**9)
ID = {"source": "x", "stream": "ws", "session": 7, "seq": 3, "sub_seq": 0}
TRADE = Trade(symbol="AAPL", asset_class="equity", ts_event=NOW - 10, ts_recv=NOW, price=10, size=2, **ID)
QUOTE = Quote(
    symbol="AAPL", asset_class="equity", ts_event=NOW, ts_recv=NOW, bid_price=9, bid_size=1, ask_price=10,
    ask_size=1, **ID,
)  # fmt: skip
BOOK = BookUpdate(
    symbol="BTC/USD", asset_class="crypto", ts_event=NOW, ts_recv=NOW, bids=(Level(9, 1, 2),),
    asks=(Level(10, 0),), depth=10, **ID,
)  # fmt: skip

# Each field the predicates read, at and across its bounds (ints also as wrong types).
COMMON: dict[str, list[Any]] = {
    "ts_recv": [TS_MIN - 1, TS_MIN, NOW + 5 * 10**9, NOW + 5 * 10**9 + 1],
    "ts_event": [
        TS_MIN - 1,
        TS_MIN,
        NOW - 3600 * 10**9 - 1,
        NOW - 3600 * 10**9,
        NOW + 5 * 10**9,
        NOW + 10**10,
    ],
    "symbol": ["", "aapl", "AAPL", "BTC/USD", "A" * 200],
    "asset_class": ["equity", "crypto", "future", "fx"],
    "session": [-1, 0, LONG_MAX, LONG_MAX + 1],
    "seq": [-1, 0, LONG_MAX, LONG_MAX + 1],
    "sub_seq": [-1, 0, LONG_MAX + 1],
    "venue": [None, "XNAS", 5],
}
SPECIFIC: dict[type[Any], dict[str, list[Any]]] = {
    Trade: {"price": [-1, 0, 1], "size": [-1, 0, 1], "trade_id": [None, "t1", 12]},
    Quote: {
        "bid_price": [-1, 0, 9, 11],
        "ask_price": [-1, 0, 8, 10],
        "bid_size": [-1, 0],
        "ask_size": [-1, 0],
        "bid_venue": [None, "A", 1],
        "ask_venue": [None, "B", 2.0],
        "conditions": [(), (CROSSED,)],
    },
    BookUpdate: {
        "depth": [None, -1, 0, 2**31 - 1, 2**31],
        "bids": [(), (Level(9, -1),), (Level(9, 1, -1),), (Level(9, 1, LONG_MAX + 1),), (Level(9, 1, None),)],
        "asks": [(Level(10, -1),), (Level(10, 3, 4),)],
    },
}


def _outcome(fn: Any, r: Record) -> Any:
    try:
        return ("ok", fn(r, NOW))
    except ValidationError as exc:
        return ("error", str(exc))


def _steps(r: Record, clock: int) -> Record:
    return final(Checks(WINDOW).check(r, clock))


def _cases() -> list[Record]:
    out: list[Record] = []
    for base in (TRADE, QUOTE, BOOK):
        for name, values in {**COMMON, **SPECIFIC[type(base)]}.items():
            for v in values:
                out.append(msgspec.structs.replace(base, **{name: v}))
    out.append(msgspec.structs.replace(QUOTE, bid_price=11, ask_price=10))  # crossed: flagged, kept
    return out


@pytest.mark.parametrize("record", _cases(), ids=lambda r: f"{type(r).__name__}")
def test_accept_equals_the_steps_with_a_warm_symbol_cache(record: Record) -> None:
    checks = Checks(WINDOW)
    # Warm the symbol cache with the same symbol/asset class, as a live worker has it after the first record.
    warm = msgspec.structs.replace(TRADE, symbol=record.symbol, asset_class=record.asset_class)
    with contextlib.suppress(ValidationError):
        checks.check(warm, NOW)
    assert _outcome(checks.accept, record) == _outcome(_steps, record)


def test_the_predicate_clears_the_plain_records_without_the_steps() -> None:
    """The fast path is taken (not only agreed with): a warm Checks returns the very same object."""
    checks = Checks(WINDOW)
    for r in (TRADE, QUOTE, BOOK):
        checks.accept(r, NOW)  # first sight of the symbol: the steps cache it
        assert checks.accept(r, NOW) is r
    assert checks.crossed == 0
    crossed = msgspec.structs.replace(QUOTE, bid_price=11, ask_price=10)
    flagged = checks.accept(crossed, NOW)
    assert isinstance(flagged, Quote) and flagged.conditions == (CROSSED,)
    assert checks.crossed == 1
    # A quote that arrives flagged counts as crossed, as the pipeline always counted (CROSSED in conditions).
    assert checks.accept(msgspec.structs.replace(QUOTE, conditions=(CROSSED,)), NOW).conditions == (CROSSED,)
    assert checks.crossed == 2
