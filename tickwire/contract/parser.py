"""The parser contract every vendor module implements.

A parser is pure: ``parse(payload, envelope, state) -> ParseOutput``. Anything it must remember between
messages (last quote per symbol, exchange symbol metadata, vendor sequence numbers per symbol) lives in
the explicit ``state`` object that the caller owns, creates with ``new_state()`` and passes in.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from tickwire.contract.envelope import Envelope
from tickwire.contract.records import Gap, Record


class ParseError(ValueError):
    """The payload cannot be turned into canonical records; the reason goes to the DLQ."""


@dataclass(slots=True)
class ParseOutput:
    records: list[Record] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    # True when the frame was a vendor control frame (ack, heartbeat, subscription list, ...):
    # recognized and deliberately produced no records. Not an error, never DLQ'd.
    control: bool = False
    # Symbols whose book must be resynced (vendor sequence gap); only these, never every symbol.
    resync: list[str] = field(default_factory=list)


MAX_SKIPPED_TAGS = 64  # distinct message-type tags counted one by one; the rest share one counter


def count_skipped(skipped: Counter[str], tag: object) -> None:
    """Count a skipped message of an unknown type under ``unknown:<tag>`` in a parser state's counter.

    Tags come from the input: after ``MAX_SKIPPED_TAGS`` distinct keys (and for over-long tags) the count
    goes to ``unknown:*``, so 20,000 made-up types cost one entry, not 20,000.
    """
    key = f"unknown:{tag}"
    if key not in skipped and (len(skipped) >= MAX_SKIPPED_TAGS or len(key) > 48):
        key = "unknown:*"
    skipped[key] += 1


class VendorParser(Protocol):
    source: str  # vendor id, equal to the raw topic prefix: "<source>.raw"

    def new_state(self, metadata: Any = None) -> Any:
        """Fresh per-stream state. ``metadata`` is vendor reference data (e.g. exchange symbol info)."""
        ...

    def parse(self, payload: bytes, env: Envelope, state: Any) -> ParseOutput: ...
