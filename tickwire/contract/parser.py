"""The parser contract every vendor module implements.

A parser is pure: ``parse(payload, envelope, state) -> ParseOutput``. Anything it must remember between
messages (last quote per symbol, exchange symbol metadata, vendor sequence numbers per symbol) lives in
the explicit ``state`` object that the caller owns, creates with ``new_state()`` and passes in.
"""

from __future__ import annotations

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


class VendorParser(Protocol):
    source: str  # vendor id, equal to the raw topic prefix: "<source>.raw"

    def new_state(self, metadata: Any = None) -> Any:
        """Fresh per-stream state. ``metadata`` is vendor reference data (e.g. exchange symbol info)."""
        ...

    def parse(self, payload: bytes, env: Envelope, state: Any) -> ParseOutput: ...
