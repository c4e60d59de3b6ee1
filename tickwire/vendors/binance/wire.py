"""Binance spot WebSocket messages the parser reads, as msgspec Structs.

Amounts stay text (``p: str``, levels ``[price, qty]`` as strings): Binance sends them as JSON strings and
the parser turns the text into 1e-9 units exactly, never through a float. Events carry their type in
``e`` (a tagged union), except ``bookTicker``, which has no ``e``: inside a combined-stream frame the
stream name's suffix (``btcusdt@bookTicker``) says which Struct to decode ``data`` into. Types are strict:
a frame that does not fit (JSON numbers as amounts, acks, errors, bare bookTickers, anything new) fails
to decode and the parser reads it through its lenient path instead, which yields the same records or the
precise error. Fields the parser does not read are not declared.
"""

from __future__ import annotations

import msgspec


class Combined(msgspec.Struct):
    """The combined-stream wrapper ``{"stream": "<symbol>@<type>", "data": {...}}``; data decoded later."""

    stream: str | msgspec.UnsetType = msgspec.UNSET
    data: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class AggTrade(msgspec.Struct, tag_field="e", tag="aggTrade"):
    s: str
    a: int  # aggregate trade id
    p: str
    q: str
    T: int  # trade time, ms
    m: bool  # the buyer is the maker


class Trade(msgspec.Struct, tag_field="e", tag="trade"):
    s: str
    t: int  # trade id
    p: str
    q: str
    T: int
    m: bool


class DepthUpdate(msgspec.Struct, tag_field="e", tag="depthUpdate"):
    E: int  # event time, ms
    s: str
    U: int  # first update id
    u: int  # last update id
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]


class KlineBody(msgspec.Struct):
    t: int  # open time, ms
    i: str  # interval
    x: bool  # closed
    o: str
    h: str
    l: str  # noqa: E741 - Binance's field name
    c: str
    v: str
    n: int
    s: str | msgspec.UnsetType = msgspec.UNSET


class Kline(msgspec.Struct, tag_field="e", tag="kline"):
    s: str
    k: KlineBody


class BookTicker(msgspec.Struct):
    s: str
    b: str
    B: str
    a: str
    A: str
    e: str | None = None  # absent on the wire; an ``e`` other than "bookTicker" goes the lenient way


Event = AggTrade | Trade | DepthUpdate | Kline
COMBINED = msgspec.json.Decoder(Combined)
EVENT = msgspec.json.Decoder(Event)
BOOK_TICKER = msgspec.json.Decoder(BookTicker)
