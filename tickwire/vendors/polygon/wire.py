"""Massive (formerly Polygon.io) WebSocket events as msgspec Structs, tagged by ``ev``.

Every server frame is a JSON array that may mix several events and ``ev`` types. Prices, sizes and
other decimals are typed ``msgspec.Raw``: the JSON number's exact text, never a float (``EMPTY`` when an
optional one is absent); times are ints in milliseconds, as the vendor sends them. Field names follow
the wire (``as`` is renamed ``ask_size``).
"""

from __future__ import annotations

import msgspec
from msgspec import Raw

EMPTY = Raw(b"")  # an absent optional decimal field


class Status(msgspec.Struct, tag_field="ev", tag="status", frozen=True):
    status: str
    message: str = ""


class TradeEv(msgspec.Struct, tag_field="ev", tag="T", frozen=True):
    """Stocks and options trades (options carry no ``i``, ``z``, TRF fields)."""

    sym: str
    p: Raw
    s: Raw
    t: int
    x: int | None = None
    i: str | None = None
    z: int | None = None
    c: list[int] = []
    q: int | None = None
    trfi: int | None = None
    trft: int | None = None
    ds: str | None = None  # fractional size (client model), exact decimal text


class QuoteEv(msgspec.Struct, tag_field="ev", tag="Q", frozen=True, rename={"ask_size": "as"}):
    sym: str
    bp: Raw
    ap: Raw
    bs: Raw
    ask_size: Raw
    t: int
    bx: int | None = None
    ax: int | None = None
    c: int | None = None
    i: list[int] = []
    q: int | None = None
    z: int | None = None


class _Agg(msgspec.Struct, frozen=True):
    sym: str
    o: Raw
    h: Raw
    l: Raw  # noqa: E741 - the vendor's field name
    c: Raw
    v: Raw
    s: int  # window start (ms): the bar's open time
    e: int  # window end (ms)
    vw: Raw = EMPTY
    av: Raw = EMPTY
    op: Raw = EMPTY
    a: Raw = EMPTY
    z: Raw = EMPTY
    otc: bool = False


class SecondAgg(_Agg, tag_field="ev", tag="A", frozen=True):
    pass


class MinuteAgg(_Agg, tag_field="ev", tag="AM", frozen=True):
    pass


Event = Status | TradeEv | QuoteEv | SecondAgg | MinuteAgg
KNOWN_EV = frozenset({"status", "T", "Q", "A", "AM"})

FRAME = msgspec.json.Decoder(list[Event])
ANY_FRAME = msgspec.json.Decoder(list[msgspec.Raw])
EVENT = msgspec.json.Decoder(Event)


class _Ev(msgspec.Struct):
    ev: str = ""


EV_TAG = msgspec.json.Decoder(_Ev)


def decode(payload: bytes) -> tuple[list[Event], list[str]]:
    """(known events in frame order, ``ev`` tags skipped). Raises msgspec errors on bad JSON/fields."""
    try:
        return FRAME.decode(payload), []
    except msgspec.ValidationError:
        pass  # an unknown ev type (or a bad field): sort it out event by event
    events: list[Event] = []
    skipped: list[str] = []
    for raw in ANY_FRAME.decode(payload):
        tag = EV_TAG.decode(raw).ev
        if tag in KNOWN_EV:
            events.append(EVENT.decode(raw))  # a bad field of a known event raises
        else:
            skipped.append(tag)
    return events, skipped
