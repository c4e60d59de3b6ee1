"""FIX tag=value framing and codec.

``simplefix`` (PyPI) does the tag=value encoding and the field split (including length-prefixed data
fields); this module adds what a session needs around it: frames cut from a TCP byte stream by BodyLength
(9) so each message keeps its **exact received bytes** (the raw record), checksum (10) and BodyLength
verification, and a small immutable message type.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import simplefix  # type: ignore[import-untyped]

SOH = b"\x01"
BEGIN_STRING = "FIX.4.4"
_BEGIN = b"8=" + BEGIN_STRING.encode() + SOH + b"9="
_MAX_BODY = 1 << 20  # a BodyLength beyond 1 MiB is garbage, not a message

Field = tuple[int, str]


class FixFrameError(ValueError):
    """Bytes that are not a well-formed FIX 4.4 message (bad BodyLength or CheckSum, junk)."""


@dataclass(frozen=True, slots=True)
class FixMessage:
    """One decoded message: its exact bytes and its fields in wire order (header, body, trailer)."""

    raw: bytes
    fields: tuple[Field, ...]

    @property
    def msg_type(self) -> str:
        return self.get(35) or ""

    @property
    def seq(self) -> int:
        v = self.get(34)
        if v is None or not v.isdigit():
            raise FixFrameError(f"MsgSeqNum (34) missing or not a number: {v!r}")
        return int(v)

    @property
    def poss_dup(self) -> bool:
        return self.get(43) == "Y"

    def get(self, tag: int) -> str | None:
        for t, v in self.fields:
            if t == tag:
                return v
        return None

    def get_all(self, tag: int) -> list[str]:
        return [v for t, v in self.fields if t == tag]

    def text(self) -> str:
        """Human-readable form for logs: ``35=A|34=1|...`` (never contains secrets: see ``redacted``)."""
        return "|".join(f"{t}={'***' if t in REDACT else v}" for t, v in self.fields)


REDACT = frozenset({554, 925})  # Password, NewPassword: never logged


def checksum(data: bytes) -> int:
    return sum(data) % 256


class Framer:
    """Cuts complete FIX messages out of a byte stream; keeps partial input for the next ``feed``.

    Junk before a BeginString is skipped (counted in ``skipped``); a frame whose CheckSum or trailer is
    wrong is consumed and reported in ``errors`` (drained by the caller), so the stream goes on with the
    next message, as the standard wants garbled messages ignored.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.skipped = 0
        self.errors: list[str] = []

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while True:
            try:
                frame = self._next()
            except FixFrameError as exc:
                self.errors.append(str(exc))
                continue
            if frame is None:
                return out
            out.append(frame)

    def _next(self) -> bytes | None:
        buf = self._buf
        start = buf.find(_BEGIN)
        if start < 0:
            keep = len(_BEGIN) - 1  # a BeginString may be split across reads
            if len(buf) > keep:
                self.skipped += len(buf) - keep
                del buf[: len(buf) - keep]
            return None
        if start:
            self.skipped += start
            del buf[:start]
        len_start = len(_BEGIN)
        len_end = buf.find(SOH, len_start)
        if len_end < 0:
            if len(buf) - len_start > 8:
                del buf[:1]
                raise FixFrameError("BodyLength (9) too long or unterminated")
            return None
        digits = bytes(buf[len_start:len_end])
        if not digits.isdigit() or int(digits) > _MAX_BODY:
            del buf[:1]
            raise FixFrameError(f"BodyLength (9) is not a sane number: {digits!r}")
        body_end = len_end + 1 + int(digits)
        end = body_end + 7  # "10=" + 3 digits + SOH
        if len(buf) < end:
            return None
        frame = bytes(buf[:end])
        del buf[:end]
        trailer = frame[body_end:]
        if not (trailer.startswith(b"10=") and trailer.endswith(SOH) and trailer[3:6].isdigit()):
            raise FixFrameError(f"no CheckSum (10) where BodyLength (9) ends: {trailer!r}")
        want = checksum(frame[:body_end])
        if int(trailer[3:6]) != want:
            raise FixFrameError(f"CheckSum mismatch: got {trailer[3:6]!r}, computed {want:03d}")
        return frame


def decode(frame: bytes) -> FixMessage:
    """A complete frame (from ``Framer``) -> ``FixMessage``; field values decoded as ASCII/Latin-1."""
    parser = simplefix.FixParser()
    parser.append_buffer(frame)
    try:
        m = parser.get_message()
    except Exception as exc:  # simplefix raises its own error classes on malformed fields
        raise FixFrameError(f"malformed FIX fields: {type(exc).__name__}: {exc}") from None
    if m is None:
        raise FixFrameError("incomplete FIX message")
    fields = tuple((int(t), v.decode("latin-1")) for t, v in m.pairs)
    return FixMessage(raw=frame, fields=fields)


def sending_time(ns: int) -> str:
    """UTCTimestamp with milliseconds, as FIX 4.4 defines it: ``20250102-13:04:05.678``."""
    t = dt.datetime.fromtimestamp(ns // 10**9, tz=dt.UTC)
    return f"{t:%Y%m%d-%H:%M:%S}.{(ns // 10**6) % 1000:03d}"


def encode(
    msg_type: str,
    *,
    sender: str,
    target: str,
    seq: int,
    now_ns: int,
    body: Iterable[Field] = (),
    header: Sequence[Field] = (),
) -> bytes:
    """Header 8/9/35/49/56/34/52 (+ ``header`` extras such as 43/122), then ``body`` in order, then 10."""
    m = simplefix.FixMessage()
    m.append_pair(8, BEGIN_STRING)
    m.append_pair(35, msg_type)
    m.append_pair(49, sender)
    m.append_pair(56, target)
    m.append_pair(34, seq)
    m.append_pair(52, sending_time(now_ns))
    for tag, value in header:
        m.append_pair(tag, value)
    for tag, value in body:
        m.append_pair(tag, value)
    raw: bytes = m.encode()
    return raw
