"""A faster decoder of canonical Avro records: same input, same records as ``Codec.decode``
(``tickwire.contract.codec``).

``Codec.decode`` goes fastavro ``schemaless_reader`` -> dict -> conversions -> ``cls(**d)``; for the small
canonical records the generic reader dominates (~12 µs per record). Here each canonical schema is compiled
once into straight-line Python source (one generated function per record type: inline zigzag varints,
string slices, decimal bytes -> int, ``date`` from days) that builds the msgspec record directly.

Contract: for every input, :meth:`FastDecoder.decode` returns a record equal to ``Codec.decode``'s or raises
the same error, because anything unusual (an unknown or registry schema id, a short or corrupt body, an
out-of-range union index, trailing bytes) falls back to ``Codec.decode`` itself. The fast path only
serves the local schema ids (no registry), where writer and reader schema are ours by construction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from tickwire.contract.codec import LOCAL_IDS, Codec, load_schema
from tickwire.contract.codec_schema import TABLE
from tickwire.contract.records import Level, NewsArticle, OptionContract, TickerSentiment

# Avro record name -> class: the codec's top-level table plus the records nested inside them.
_NESTED_CLASSES: tuple[type[Any], ...] = (Level, OptionContract, NewsArticle, TickerSentiment)
_CLASSES: dict[str, type[Any]] = {name: row[1] for name, row in TABLE.items()} | {
    cls.__name__: cls for cls in _NESTED_CLASSES
}
_EPOCH_ORD = dt.date(1970, 1, 1).toordinal()


class _Corrupt(ValueError):
    """Raised inside generated code; the caller then lets ``Codec.decode`` produce the real error."""


def _rl(data: bytes, pos: int) -> tuple[int, int]:
    """Zigzag varint long at ``pos`` -> (value, next pos)."""
    b = data[pos]
    pos += 1
    n = b & 0x7F
    shift = 7
    while b & 0x80:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
    if shift > 70:
        raise _Corrupt("varint too long")
    return (n >> 1) ^ -(n & 1), pos


class _Gen:
    """Emits the body of one decode function; ``v`` variables hold field values."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.n = 0
        self.helpers: dict[str, Any] = {}

    def var(self) -> str:
        self.n += 1
        return f"v{self.n}"

    def emit(self, ind: int, line: str) -> None:
        self.lines.append("    " * ind + line)

    def long(self, ind: int, out: str) -> None:
        # _rl inlined: nanosecond timestamps take 9 bytes and a call costs as much as the loop.
        self.emit(ind, "b = data[pos]")
        self.emit(ind, "pos += 1")
        self.emit(ind, "if b & 0x80:")
        self.emit(ind + 1, "n = b & 0x7F")
        self.emit(ind + 1, "shift = 7")
        self.emit(ind + 1, "while b & 0x80:")
        self.emit(ind + 2, "b = data[pos]")
        self.emit(ind + 2, "pos += 1")
        self.emit(ind + 2, "n |= (b & 0x7F) << shift")
        self.emit(ind + 2, "shift += 7")
        self.emit(ind + 1, "if shift > 70:")
        self.emit(ind + 2, "raise _Corrupt('varint too long')")
        self.emit(ind + 1, f"{out} = (n >> 1) ^ -(n & 1)")
        self.emit(ind, "else:")
        self.emit(ind + 1, f"{out} = (b >> 1) ^ -(b & 1)")

    def raw(self, ind: int, out: str) -> None:
        """Length-prefixed bytes slice into ``out``."""
        self.long(ind, "n")
        self.emit(ind, "e = pos + n")
        self.emit(ind, "if n < 0 or e > end:")
        self.emit(ind + 1, "raise _Corrupt('short')")
        self.emit(ind, f"{out} = data[pos:e]")
        self.emit(ind, "pos = e")

    def value(self, ind: int, schema: Any, out: str, named: dict[str, Any]) -> None:
        """Code that decodes ``schema`` at ``pos`` into variable ``out``."""
        t = schema if isinstance(schema, str) else schema.get("type") if isinstance(schema, dict) else None
        logical = schema.get("logicalType") if isinstance(schema, dict) else None
        if isinstance(schema, list):
            self.union(ind, schema, out, named)
        elif isinstance(schema, str) and schema in named:
            self.emit(ind, f"{out}, pos = {named[schema]}(data, pos, end)")
        elif t == "string":
            self.raw(ind, out)
            self.emit(ind, f"{out} = {out}.decode()")
        elif t == "bytes" and logical == "decimal":
            if schema.get("scale") != 9:
                raise NotImplementedError("decimal scale other than 9")
            self.raw(ind, out)
            self.emit(ind, f"{out} = _from_bytes({out}, 'big', signed=True)")
        elif t == "bytes":
            self.raw(ind, out)
        elif t in ("long", "int"):
            self.long(ind, out)
            if t == "int":
                self.emit(ind, f"if not -2147483648 <= {out} <= 2147483647:")
                self.emit(ind + 1, "raise _Corrupt('int range')")
            if logical == "date":
                self.emit(ind, f"{out} = _date({out} + {_EPOCH_ORD})")
        elif t == "boolean":
            self.emit(ind, f"{out} = data[pos] != 0")
            self.emit(ind, "pos += 1")
        elif t == "array":
            fn = self.item_fn(schema["items"], named)
            # Empty arrays (no conditions, no levels) are the common case: one zero byte.
            self.emit(ind, "if data[pos] == 0:")
            self.emit(ind + 1, f"{out} = ()")
            self.emit(ind + 1, "pos += 1")
            self.emit(ind, "else:")
            self.emit(ind + 1, f"{out}, pos = _array(data, pos, end, {fn})")
        elif t == "map":
            fn = self.item_fn(schema["values"], named)
            self.emit(ind, f"{out}, pos = _map(data, pos, end, {fn})")
        elif t == "record":
            name = schema["name"]
            named[name] = self.record_fn(schema, named)
            self.emit(ind, f"{out}, pos = {named[name]}(data, pos, end)")
        else:
            raise NotImplementedError(f"no fast decoder for {schema!r}")

    def union(self, ind: int, branches: list[Any], out: str, named: dict[str, Any]) -> None:
        self.emit(ind, "u = data[pos]")
        self.emit(ind, "pos += 1")
        for i, br in enumerate(branches):
            self.emit(ind, f"{'if' if i == 0 else 'elif'} u == {2 * i}:")  # zigzag of i, one byte
            if br == "null":
                self.emit(ind + 1, f"{out} = None")
            else:
                self.value(ind + 1, br, out, named)
        self.emit(ind, "else:")
        self.emit(ind + 1, "raise _Corrupt('union index')")

    def item_fn(self, schema: Any, named: dict[str, Any]) -> str:
        """A helper ``f(data, pos, end) -> (value, pos)`` for array items / map values."""
        if isinstance(schema, str) and schema in named:
            return str(named[schema])
        if isinstance(schema, dict) and schema.get("type") == "record":
            fn = self.record_fn(schema, named)
            named[schema["name"]] = fn
            return fn
        sub = _Gen()
        sub.value(1, schema, "x", named)
        sub.emit(1, "return x, pos")
        return self.define(sub, "_item")

    def record_fn(self, schema: dict[str, Any], named: dict[str, Any]) -> str:
        """A helper ``f(data, pos, end) -> (record, pos)`` for a nested record."""
        sub = _Gen()
        args = sub.fields(schema, named)
        sub.emit(1, f"return _cls_{schema['name']}({args}), pos")
        self.helpers[f"_cls_{schema['name']}"] = _CLASSES[schema["name"]]
        return self.define(sub, f"_rec_{schema['name']}")

    def fields(self, schema: dict[str, Any], named: dict[str, Any]) -> str:
        args = []
        for f in schema["fields"]:
            v = self.var()
            self.value(1, f["type"], v, named)
            args.append(f"{f['name']}={v}")
        return ", ".join(args)

    def define(self, sub: _Gen, prefix: str) -> str:
        name = f"{prefix}{len(self.helpers)}"
        src = f"def {name}(data, pos, end):\n" + "\n".join(sub.lines) + "\n"
        self.helpers.update(sub.helpers)
        ns = _namespace(self.helpers)
        exec(compile(src, f"<avro_fast_decode {name}>", "exec"), ns)
        self.helpers[name] = ns[name]
        return name


def _namespace(helpers: dict[str, Any]) -> dict[str, Any]:
    return {
        "_rl": _rl,
        "_Corrupt": _Corrupt,
        "_from_bytes": int.from_bytes,
        "_date": dt.date.fromordinal,
        "_array": _array,
        "_map": _map,
        **helpers,
    }


def _count(data: bytes, pos: int) -> tuple[int, int]:
    """Block count of an array/map (a negative count is followed by the block's byte size)."""
    n, pos = _rl(data, pos)
    if n < 0:
        n = -n
        _, pos = _rl(data, pos)
    return n, pos


def _array(data: bytes, pos: int, end: int, item: Callable[..., tuple[Any, int]]) -> tuple[Any, int]:
    out = []
    n, pos = _count(data, pos)
    while n:
        for _ in range(n):
            v, pos = item(data, pos, end)
            out.append(v)
        n, pos = _count(data, pos)
    return tuple(out), pos


def _map(data: bytes, pos: int, end: int, item: Callable[..., tuple[Any, int]]) -> tuple[Any, int]:
    out: dict[str, Any] = {}
    n, pos = _count(data, pos)
    while n:
        for _ in range(n):
            klen, pos = _rl(data, pos)
            e = pos + klen
            if klen < 0 or e > end:
                raise _Corrupt("short")
            key = data[pos:e].decode()
            v, pos = item(data, e, end)
            out[key] = v
        n, pos = _count(data, pos)
    return out, pos


def compile_decoder(name: str) -> Callable[[bytes], Any]:
    """The decode function of one canonical record type: Confluent-framed bytes -> record."""
    schema = load_schema(name)
    g = _Gen()
    g.emit(1, "pos = 5")
    g.emit(1, "end = len(data)")
    args = g.fields(schema, {})
    g.emit(1, "if pos != end:")
    g.emit(2, "raise _Corrupt('trailing bytes')")
    g.emit(1, f"return _cls({args})")
    src = "def decode(data):\n" + "\n".join(g.lines) + "\n"
    ns = _namespace(g.helpers)
    ns["_cls"] = _CLASSES[name]
    exec(compile(src, f"<avro_fast_decode {name}>", "exec"), ns)
    fn: Callable[[bytes], Any] = ns["decode"]
    return fn


class FastDecoder:
    """``decode(data) -> record`` like ``Codec(registry_url).decode``, faster for the local schema ids."""

    def __init__(self, registry_url: str | None = None) -> None:
        self.codec = Codec(registry_url)
        self._fast: dict[int, Callable[[bytes], Any]] = {}
        if registry_url is None:
            for name, sid in LOCAL_IDS.items():
                try:
                    self._fast[sid] = compile_decoder(name)
                except NotImplementedError:  # a schema construct we do not generate: generic path
                    continue

    def decode(self, data: bytes) -> Any:
        if len(data) > 5 and data[0] == 0:
            fn = self._fast.get(int.from_bytes(data[1:5], "big"))
            if fn is not None:
                try:
                    return fn(data)
                except Exception:  # corrupt or unusual: the reference decoder decides (and explains)
                    pass
        return self.codec.decode(data)
