"""Size and nesting limits for JSON payloads, applied at the parser boundary by every JSON parser.

A hostile or corrupt frame must cost a bounded amount of CPU and become a ``ParseError`` (a DLQ record
with its reason), never a ``RecursionError`` from a decoder or from code walking the decoded document.

* ``decode(fn, payload)``: the size limit, then ``fn(payload)`` with a ``RecursionError`` (msgspec's and
  the stdlib's decoders raise it on deep nesting) turned into a ``ParseError``. For typed decoders, whose
  fixed shapes cannot nest deeply anyway; costs one ``len()``.
* ``check(payload)``: the size limit and ``MAX_DEPTH`` nesting, for payloads decoded into generic
  ``dict``/``list`` documents that parsers walk. Counting brackets settles almost every frame; only a
  frame with more than ``MAX_DEPTH`` brackets in total is measured (strings blanked, brackets kept,
  innermost pairs peeled level by level: C-speed ``bytes`` passes, at most ``MAX_DEPTH`` of them).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from tickwire.contract.parser import ParseError

MAX_BYTES = 16 * 1024 * 1024  # a whole options chain is one REST answer (its topic holds 16 MiB records)
MAX_DEPTH = 64  # vendor documents nest 3-6 deep

T = TypeVar("T")

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_PARENS = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


class JsonLimitError(ParseError):
    """A JSON payload over the size or nesting limit."""


def _as_bytes(payload: bytes | bytearray | memoryview | str) -> bytes:
    return payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else bytes(payload)


def check_size(payload: bytes | bytearray | memoryview | str) -> None:
    if len(payload) > MAX_BYTES:
        raise JsonLimitError(f"JSON payload of {len(payload)} bytes exceeds {MAX_BYTES}")


def depth_exceeds(payload: bytes | bytearray | memoryview | str, limit: int = MAX_DEPTH) -> bool:
    """True when the JSON text nests arrays/objects deeper than ``limit`` (strings do not count), or its
    brackets do not balance (not JSON anyway, and a decoder would recurse into it before noticing)."""
    data = _as_bytes(payload)
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    if b'"' in data:  # blank the strings: without escapes, every other piece between quotes is one
        data = _STRING.sub(b"", data) if b"\\" in data else b"".join(data.split(b'"')[::2])
    brackets = data.translate(_PARENS, _NOT_BRACKETS)
    run = b"(" * (limit + 1)  # that many openers in a row: too deep, no need to peel further
    for _ in range(limit):  # each pass removes the innermost level
        if run in brackets:
            return True
        peeled = brackets.replace(b"()", b"")
        if peeled == brackets:
            break
        brackets = peeled
    return bool(brackets)


def check(payload: bytes | bytearray | memoryview | str) -> None:
    """Size and depth limits; raises ``JsonLimitError``."""
    check_size(payload)
    if depth_exceeds(payload):
        raise JsonLimitError(f"JSON nested deeper than {MAX_DEPTH} levels (or unbalanced brackets)")


def decode(fn: Callable[[bytes], T], payload: bytes) -> T:
    """``fn(payload)`` under the size limit, a ``RecursionError`` of the decoder as ``JsonLimitError``."""
    check_size(payload)
    try:
        return fn(payload)
    except RecursionError:
        raise JsonLimitError("JSON nested too deeply for the decoder") from None
