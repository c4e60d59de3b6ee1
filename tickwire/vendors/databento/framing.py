"""DBN framing checks and symbol mappings, before and around the decoder (``parser`` uses both).

A corrupt record length is a ``ParseError`` found on the record headers, before the native decoder sees
a byte; symbol mappings are kept as the intervals the metadata states, so their memory follows the
metadata's size and never its date ranges (a 1,304-byte header once expanded per day into 233 MB).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from tickwire.contract.parser import ParseError
from tickwire.contract.records import AssetClass

_EPOCH = dt.date(1970, 1, 1)

# Record sizes by rtype (bytes; several for records whose layout changed across DBN versions 1-3),
# checked on the record headers before the decoder sees a byte: a corrupt length is a ParseError, never
# a decoder panic, and a message truncated mid-record is an error, not its complete records.
_RECORD_SIZES: dict[int, frozenset[int]] = {
    0: frozenset({48}),  # trades (MBP-0)
    1: frozenset({80}),  # MBP-1
    10: frozenset({368}),  # MBP-10
    **{rt: frozenset({56}) for rt in (17, 32, 33, 34, 35, 36)},  # OHLCV
    18: frozenset({40}),  # status
    19: frozenset({360, 400, 520}),  # definition v1, v2, v3
    20: frozenset({112}),  # imbalance
    21: frozenset({80, 320}),  # error v1, v2+
    22: frozenset({80, 176}),  # symbol mapping v1, v2+
    23: frozenset({80, 320}),  # system v1, v2+
    24: frozenset({64, 80}),  # statistics v1-2, v3
    160: frozenset({56}),  # MBO
    **{rt: frozenset({80}) for rt in (177, 192, 193, 194, 195, 196, 197)},  # CMBP-1, CBBO, TCBBO, BBO, TBBO
}
_HEADER = 16  # length, rtype, publisher_id, instrument_id, ts_event
MAX_INTERVALS = 1_000_000  # symbol-mapping intervals per metadata (a day file of all OPRA has ~1.5M ids)


@dataclass
class SymbolMap:
    dataset: str
    schema: str
    asset_class: AssetClass
    # instrument_id -> its mapping intervals (first day, day after the last, raw symbol), days since the
    # epoch. Kept as intervals, never expanded per day: memory follows the metadata's size, not the dates.
    intervals: dict[int, list[tuple[int, int, str]]]
    any_day: dict[int, str]  # instrument_id -> raw symbol when it maps to exactly one

    def on_day(self, iid: int, day: int) -> str | None:
        for d0, d1, raw in self.intervals.get(iid, ()):
            if d0 <= day < d1:
                return raw
        return None


def symbol_map(md: Any, asset_class: AssetClass) -> SymbolMap:
    """The metadata's symbol mappings as intervals per instrument_id (``ParseError`` when too many)."""
    by_id: dict[int, list[tuple[int, int, str]]] = {}
    ids: dict[int, set[str]] = {}
    n = 0
    for raw_symbol, intervals in md.mappings.items():
        for iv in intervals:
            n += 1
            if n > MAX_INTERVALS:
                raise ParseError(f"DBN metadata holds more than {MAX_INTERVALS} symbol-mapping intervals")
            try:
                iid = int(iv["symbol"])
            except ValueError:
                continue  # stype_out is not instrument_id
            ids.setdefault(iid, set()).add(raw_symbol)
            d0, d1 = (iv["start_date"] - _EPOCH).days, (iv["end_date"] - _EPOCH).days
            by_id.setdefault(iid, []).append((d0, max(d1, d0 + 1), raw_symbol))
    # Later intervals win, as the per-day expansion let them overwrite earlier ones.
    intervals = {iid: ivs[::-1] for iid, ivs in by_id.items()}
    any_day = {iid: next(iter(s)) for iid, s in ids.items() if len(s) == 1}
    return SymbolMap(md.dataset, str(md.schema or ""), asset_class, intervals, any_day)


def check_records(payload: bytes) -> int:
    """Walk the record headers of a plain DBN stream; the number of records, or ``ParseError``."""
    n = len(payload)
    if n < 8:
        raise ParseError("DBN stream shorter than its metadata header")
    pos = 8 + int.from_bytes(payload[4:8], "little")
    if pos > n:
        raise ParseError(f"DBN metadata of {pos - 8} bytes runs past the end ({n} bytes)")
    count = 0
    while pos < n:
        if pos + _HEADER > n:
            raise ParseError(f"DBN stream truncated in the header of record {count}")
        length, rtype = payload[pos] * 4, payload[pos + 1]
        sizes = _RECORD_SIZES.get(rtype)
        if length < _HEADER or (sizes is not None and length not in sizes):
            raise ParseError(f"DBN record {count}: length {length} invalid for rtype {rtype}")
        if pos + length > n:
            raise ParseError(f"DBN stream truncated in record {count} ({n - pos} of {length} bytes)")
        pos += length
        count += 1
    return count
