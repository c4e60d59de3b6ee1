"""Alpaca market-data messages the parser reads, as msgspec Structs tagged by ``T``.

Alpaca frames are JSON (or MessagePack) arrays of messages. Amounts are JSON *numbers* here, so their
fields are ``Any``: the JSON decoder's ``float_hook`` hands every fractional number over as its exact
text (``Num``, a ``str``), integers stay ``int``, and the parser turns either into 1e-9 units without a
float. MessagePack frames carry binary doubles on the wire; they are converted into the same Structs and
the parser reads the doubles through their shortest repr, as before. Only market messages with a
canonical record are declared: a frame holding anything else (control, status, LULD, new types) fails to
decode and the parser reads it through its lenient path, which counts and classifies every message.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
import msgspec

from tickwire.contract import jsonlimits
from tickwire.contract.parser import ParseError


class Num(str):
    """A JSON number's original text (``float_hook``): exact, never a float."""


class _Msg(msgspec.Struct, tag_field="T"):
    S: str  # vendor symbol
    t: Any  # RFC 3339 text (JSON) or msgpack.Timestamp (MessagePack)


class TradeMsg(_Msg, tag="t"):
    p: Any
    s: Any
    x: Any = None  # venue
    i: Any = None  # trade id
    c: Any = None  # condition(s)
    tks: Any = None  # crypto taker side B/S


class QuoteMsg(_Msg, tag="q"):
    bp: Any
    bs: Any
    ap: Any
    as_: Any = msgspec.field(name="as")
    bx: Any = None
    ax: Any = None
    c: Any = None


class _BarMsg(_Msg):
    o: Any
    h: Any
    l: Any  # noqa: E741 - Alpaca's field name
    c: Any
    v: Any
    vw: Any = None
    n: Any = None


class MinuteBar(_BarMsg, tag="b"):
    pass


class DailyBar(_BarMsg, tag="d"):
    pass


class UpdatedBar(_BarMsg, tag="u"):
    pass


class WireLevel(msgspec.Struct):
    p: Any
    s: Any


class OrderbookMsg(_Msg, tag="o"):
    b: list[WireLevel] = []
    a: list[WireLevel] = []
    r: Any = False  # reset: a snapshot


Message = TradeMsg | QuoteMsg | MinuteBar | DailyBar | UpdatedBar | OrderbookMsg
TAG: dict[type[Any], str] = {
    TradeMsg: "t",
    QuoteMsg: "q",
    MinuteBar: "b",
    DailyBar: "d",
    UpdatedBar: "u",
    OrderbookMsg: "o",
}
JSON = msgspec.json.Decoder(list[Message], float_hook=Num)


# ---- the lenient reading: any frame as plain lists and dicts (what the typed decoders refuse) -----------


def _bad_constant(name: str) -> Any:
    raise ParseError(f"non-finite number {name} in JSON")


def decode_frame(payload: bytes, content_type: str) -> list[Any]:
    try:
        if content_type == "msgpack":
            msgs = msgpack.unpackb(payload, raw=False, timestamp=0, strict_map_key=False)
        else:
            jsonlimits.check(payload)
            msgs = json.loads(payload, parse_float=Num, parse_constant=_bad_constant)
    except ParseError:
        raise
    except Exception as exc:  # json.JSONDecodeError, msgpack errors, UnicodeDecodeError ...
        raise ParseError(f"undecodable {content_type} frame: {type(exc).__name__}: {exc}") from None
    if isinstance(msgs, dict):
        msgs = [msgs]
    if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
        raise ParseError("frame is not an array of objects")
    return msgs
