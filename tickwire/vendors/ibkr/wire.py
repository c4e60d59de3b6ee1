"""The TWS API socket protocol: handshake, framing, fields, message ids and typed messages.

Shared by the simulator (server side) and the producer (client side); layouts follow ``ib_async`` 2.1.0
(``client.py`` requests, ``decoder.py`` replies) at server version ``SERVER_VERSION``.

- Handshake: the client sends ``API\\0`` then one length-prefixed text ``v<min>..<max>[ options]``; the
  server answers one framed message of exactly two fields: its version and the connection time.
- Every later message: a 4-byte big-endian length, then the fields, each terminated by ``\\0``.
  Numbers are decimal text, "unset" is the empty string, booleans are ``1``/``0``.
- Message ids overlap between the directions (99 is tickByTick from the server, reqCompletedOrders
  from the client): ``In`` are server -> client ids, ``Out`` client -> server ids.

Prices and sizes stay decimal text (``str``) in the typed messages: never binary floats.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from enum import IntEnum
from typing import Any, ClassVar, TypeVar

import msgspec

API_PREFIX = b"API\0"
CLIENT_MIN_VERSION = 157
CLIENT_MAX_VERSION = 178
SERVER_VERSION = 176  # the simulator's; >= 166: error messages carry advancedOrderRejectJson
MAX_MESSAGE = 16 * 1024 * 1024  # a length prefix above this is a broken stream, not a message

Field = str | int | bool


class WireError(ValueError):
    """Bytes that are not the TWS protocol (bad handshake, absurd length, undecodable fields)."""


class In(IntEnum):
    """Server -> client message ids."""

    TICK_PRICE = 1
    TICK_SIZE = 2
    ERR_MSG = 4
    TICK_GENERIC = 45
    TICK_STRING = 46
    NEXT_VALID_ID = 9
    CONTRACT_DATA = 10
    MARKET_DEPTH = 12
    MARKET_DEPTH_L2 = 13
    MANAGED_ACCTS = 15
    CURRENT_TIME = 49
    REAL_TIME_BARS = 50
    CONTRACT_DATA_END = 52
    OPEN_ORDER_END = 53
    ACCT_DOWNLOAD_END = 54
    EXECUTION_DATA_END = 55
    POSITION_END = 62
    ACCOUNT_UPDATE_MULTI_END = 74
    TICK_BY_TICK = 99
    COMPLETED_ORDERS_END = 102


class Out(IntEnum):
    """Client -> server message ids."""

    REQ_MKT_DATA = 1
    CANCEL_MKT_DATA = 2
    REQ_OPEN_ORDERS = 5
    REQ_ACCT_DATA = 6
    REQ_EXECUTIONS = 7
    REQ_CONTRACT_DATA = 9
    REQ_MKT_DEPTH = 10
    CANCEL_MKT_DEPTH = 11
    REQ_CURRENT_TIME = 49
    REQ_REAL_TIME_BARS = 50
    CANCEL_REAL_TIME_BARS = 51
    REQ_POSITIONS = 61
    START_API = 71
    REQ_ACCOUNT_UPDATES_MULTI = 76
    REQ_TICK_BY_TICK_DATA = 97
    CANCEL_TICK_BY_TICK_DATA = 98
    REQ_COMPLETED_ORDERS = 99


# -------------------------------------------------------------------- framing


def text(v: Field) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


def body(fields: Iterable[Field]) -> bytes:
    """A message body: every field NUL-terminated (no length prefix)."""
    return "".join(f"{text(f)}\0" for f in fields).encode()


def frame(fields: Iterable[Field]) -> bytes:
    """One framed message: 4-byte big-endian length + body."""
    b = body(fields)
    return struct.pack(">I", len(b)) + b


def fields_of(payload: bytes) -> list[str]:
    """The fields of a message body (the trailing empty string of the last NUL dropped)."""
    try:
        parts = payload.decode().split("\0")
    except UnicodeDecodeError as exc:
        raise WireError(f"message is not UTF-8: {exc}") from None
    if not payload.endswith(b"\0"):
        raise WireError("message body does not end with a NUL")
    parts.pop()
    return parts


def msg_id(payload: bytes) -> int:
    """The message id (field 0) of a body, -1 when it has none."""
    end = payload.find(b"\0")
    head = payload[:end] if end >= 0 else b""
    return int(head) if head.isdigit() else -1


class FrameReader:
    """Incremental splitter of a byte stream into message bodies (length prefixes removed)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= 4:
            (n,) = struct.unpack_from(">I", self._buf)
            if n > MAX_MESSAGE:
                raise WireError(f"message length {n} exceeds {MAX_MESSAGE}")
            if len(self._buf) < 4 + n:
                break
            out.append(bytes(self._buf[4 : 4 + n]))
            del self._buf[: 4 + n]
        return out

    def take_api_prefix(self) -> bool | None:
        """Server side: consume the client's ``API\\0``; None until 4 bytes arrived."""
        if len(self._buf) < 4:
            return None
        ok = bytes(self._buf[:4]) == API_PREFIX
        if ok:
            del self._buf[:4]
        return ok


def handshake_request(min_version: int = CLIENT_MIN_VERSION, max_version: int = CLIENT_MAX_VERSION) -> bytes:
    v = f"v{min_version}..{max_version}".encode()
    return API_PREFIX + struct.pack(">I", len(v)) + v


def parse_version_range(payload: bytes) -> tuple[int, int]:
    """``v157..178[ options]`` -> (157, 178); a single ``v176`` -> (176, 176)."""
    s = payload.decode(errors="replace").split(" ", 1)[0]
    if not s.startswith("v"):
        raise WireError(f"bad version range {s!r}")
    lo, _, hi = s[1:].partition("..")
    try:
        return int(lo), int(hi or lo)
    except ValueError:
        raise WireError(f"bad version range {s!r}") from None


# ------------------------------------------------------------ server messages


class Msg(msgspec.Struct, frozen=True):
    """Base of the typed server messages: ``MSG_ID``, ``VERSION`` (None = no version field)."""

    MSG_ID: ClassVar[int] = -1
    VERSION: ClassVar[int | None] = None

    def to_fields(self) -> list[Field]:
        head: list[Field] = [self.MSG_ID] if self.VERSION is None else [self.MSG_ID, self.VERSION]
        values: list[Field] = list(msgspec.structs.astuple(self))
        return head + values


class TickPrice(Msg, frozen=True):
    MSG_ID = In.TICK_PRICE
    VERSION = 6
    req_id: int
    tick_type: int  # 1 bid, 2 ask, 4 last, 6 high, 7 low, 9 close
    price: str
    size: str
    attr_mask: int = 0


class TickSize(Msg, frozen=True):
    MSG_ID = In.TICK_SIZE
    VERSION = 6
    req_id: int
    tick_type: int  # 0 bid size, 3 ask size, 5 last size, 8 volume
    size: str


class ErrorMsg(Msg, frozen=True):
    MSG_ID = In.ERR_MSG
    VERSION = 2
    req_id: int
    code: int
    message: str
    advanced: str = ""  # advancedOrderRejectJson (server version >= 166)


class MktDepth(Msg, frozen=True):
    MSG_ID = In.MARKET_DEPTH
    VERSION = 1
    req_id: int
    position: int
    operation: int  # 0 insert, 1 update, 2 delete
    side: int  # 0 ask, 1 bid
    price: str
    size: str


class MktDepthL2(Msg, frozen=True):
    MSG_ID = In.MARKET_DEPTH_L2
    VERSION = 1
    req_id: int
    position: int
    market_maker: str
    operation: int  # 0 insert (rows at and below shift down), 1 update, 2 delete (rows below shift up)
    side: int  # 0 ask, 1 bid
    price: str
    size: str
    is_smart: bool


class TickLast(Msg, frozen=True):
    """tickByTick AllLast / Last (tick type 2 / 1)."""

    MSG_ID = In.TICK_BY_TICK
    req_id: int
    tick_type: int
    time: int  # epoch seconds
    price: str
    size: str
    mask: int  # 1 pastLimit, 2 unreported
    exchange: str
    special_conditions: str


class TickBidAsk(Msg, frozen=True):
    """tickByTick BidAsk (tick type 3)."""

    MSG_ID = In.TICK_BY_TICK
    req_id: int
    tick_type: int
    time: int
    bid_price: str
    ask_price: str
    bid_size: str
    ask_size: str
    mask: int  # 1 bidPastLow, 2 askPastHigh


class RealTimeBar(Msg, frozen=True):
    MSG_ID = In.REAL_TIME_BARS
    VERSION = 3
    req_id: int
    time: int  # epoch seconds, bar start
    open: str
    high: str
    low: str
    close: str
    volume: str
    wap: str
    count: int


M = TypeVar("M", bound=Msg)


def decode_as(cls: type[M], f: Sequence[str]) -> M:
    """Fields of a server message -> its typed struct (ints from text, empty int = 0)."""
    skip = 1 if cls.VERSION is None else 2
    values = list(f[skip:])
    kwargs: dict[str, Any] = {}
    for info, raw in zip(msgspec.structs.fields(cls), values, strict=False):
        if info.type is int:
            kwargs[info.name] = int(raw) if raw else 0
        elif info.type is bool:
            kwargs[info.name] = raw == "1"
        else:
            kwargs[info.name] = raw
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise WireError(f"{cls.__name__}: {exc}") from None


def decode_message(f: Sequence[str]) -> Msg | None:
    """Typed view of the data and error messages (None for any other message id)."""
    try:
        mid = int(f[0])
        if mid == In.TICK_BY_TICK:
            return decode_as(TickBidAsk if f[2] == "3" else TickLast, f)
        cls = _BY_ID.get(mid)
        return decode_as(cls, f) if cls is not None else None
    except (IndexError, ValueError) as exc:
        raise WireError(f"malformed message {list(f)[:4]}: {exc}") from None


_BY_ID: dict[int, type[Msg]] = {
    c.MSG_ID: c for c in (TickPrice, TickSize, ErrorMsg, MktDepth, MktDepthL2, RealTimeBar)
}
