"""Coinbase Exchange WebSocket messages the parser reads, as msgspec Structs tagged by ``type``.

Amounts stay text (``price: str``): Coinbase sends every price and size as a JSON string, and the parser
turns the text into 1e-9 units exactly (``parse_units``), never through a float. Types are strict: a
message that does not fit (a JSON number where text is expected, a missing field, a type not listed here)
fails to decode, and the parser then reads the frame through its lenient path, which yields the same
records or the precise error the DLQ shows. Fields the parser does not read are not declared (msgspec
skips them without building them).
"""

from __future__ import annotations

import msgspec


class Match(msgspec.Struct, tag_field="type", tag="match"):
    product_id: str
    trade_id: int
    side: str  # the maker's side
    price: str
    size: str
    time: str
    sequence: int


class LastMatch(Match, tag="last_match"):
    pass


class L2Update(msgspec.Struct, tag_field="type", tag="l2update"):
    product_id: str
    changes: list[tuple[str, str, str]]  # [side, price, size]
    time: str


class Snapshot(msgspec.Struct, tag_field="type", tag="snapshot"):
    product_id: str
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    time: str | msgspec.UnsetType = msgspec.UNSET  # absent in the 2021 feed


class Ticker(msgspec.Struct, tag_field="type", tag="ticker"):
    product_id: str
    best_bid: str | None = None
    best_ask: str | None = None
    best_bid_size: str | None = None  # absent in the 2021 feed: such tickers are control frames
    best_ask_size: str | None = None
    time: str | msgspec.UnsetType = msgspec.UNSET


class _Full(msgspec.Struct, tag_field="type"):
    """Full-channel order events: only their per-product ``sequence`` matters to the parser."""

    product_id: str
    time: str
    sequence: int


class Received(_Full, tag="received"):
    pass


class Open(_Full, tag="open"):
    pass


class Done(_Full, tag="done"):
    pass


class Change(_Full, tag="change"):
    pass


class Activate(_Full, tag="activate"):
    pass


class Subscriptions(msgspec.Struct, tag_field="type", tag="subscriptions"):
    pass


class Heartbeat(msgspec.Struct, tag_field="type", tag="heartbeat"):
    pass


class Status(msgspec.Struct, tag_field="type", tag="status"):
    pass


class Error(msgspec.Struct, tag_field="type", tag="error"):
    pass


Message = (
    Match
    | LastMatch
    | L2Update
    | Snapshot
    | Ticker
    | Received
    | Open
    | Done
    | Change
    | Activate
    | Subscriptions
    | Heartbeat
    | Status
    | Error
)
CONTROL = (Subscriptions, Heartbeat, Status, Error)
FULL = (Received, Open, Done, Change, Activate)
DECODER = msgspec.json.Decoder(Message)
