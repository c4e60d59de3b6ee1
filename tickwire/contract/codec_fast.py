"""Avro binary written straight from a canonical record: one generated function per record type.

Part of the codec (``Codec.encode`` uses :func:`fast_encoder`). For each schema the generator writes the
Python source of one function: every field read once into a local, each field's encoding inlined as an
expression (no call per field), and the results joined once. Encoded forms that repeat are cached:
strings of low cardinality (symbols, venues, enum-like values, stream names) and amounts (prices and
sizes repeat across quotes, trades and book levels). Longs are encoded inline from two 14-bit-group tables
(a nanosecond timestamp is five lookups, no call). Tests assert byte equality with fastavro for every record
type.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tickwire.contract.codec_datum import amount_bytes
from tickwire.contract.codec_schema import NAMESPACE, CodecError, load_schema
from tickwire.contract.records import Level

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_EPOCH_ORD = dt.date(1970, 1, 1).toordinal()
_SMALL = [bytes([n << 1]) for n in range(64)]  # zigzag of 0..63 is one byte

# Varint groups 14 bits at a time from two tables (16384 entries each, ~1 MB): a 9-byte timestamp is 5
# lookups and concatenations instead of 9 loop turns.
_C14 = [bytes(((v & 0x7F) | 0x80, (v >> 7) | 0x80)) for v in range(1 << 14)]  # more groups follow
_L14 = [bytes((v,)) if v < 0x80 else bytes(((v & 0x7F) | 0x80, v >> 7)) for v in range(1 << 14)]  # last

# Bounded caches of encoded values; cleared when full (pure functions of the key: clearing costs speed only).
_STR_CACHE: dict[str, bytes] = {}
_STR_CACHE_MAX = 200_000
_AMT_CACHE: dict[int, bytes] = {}
_AMT_CACHE_MAX = 200_000


def _long(n: int) -> bytes:
    if 0 <= n < 64:
        return _SMALL[n]
    if not _INT64_MIN <= n <= _INT64_MAX:
        raise CodecError(f"{n} does not fit an Avro long")
    z = (n << 1) ^ (n >> 63)  # zigzag
    # Largest first: nanosecond timestamps (the most frequent longs) take 9 bytes.
    if z >= 0x100000000000000:
        return (
            _C14[z & 0x3FFF]
            + _C14[(z >> 14) & 0x3FFF]
            + _C14[(z >> 28) & 0x3FFF]
            + _C14[(z >> 42) & 0x3FFF]
            + _L14[z >> 56]
        )
    if z < 0x4000:
        return _L14[z]
    if z < 0x10000000:
        return _C14[z & 0x3FFF] + _L14[z >> 14]
    if z < 0x40000000000:
        return _C14[z & 0x3FFF] + _C14[(z >> 14) & 0x3FFF] + _L14[z >> 28]
    return _C14[z & 0x3FFF] + _C14[(z >> 14) & 0x3FFF] + _C14[(z >> 28) & 0x3FFF] + _L14[z >> 42]


def _string(s: str) -> bytes:
    """Cache miss of an inlined string field: encode and remember."""
    raw = s.encode()
    b = _long(len(raw)) + raw
    if len(_STR_CACHE) >= _STR_CACHE_MAX:
        _STR_CACHE.clear()
    _STR_CACHE[s] = b
    return b


def _amount(n: int) -> bytes:
    """A decimal(38, 9) amount (bytes with a length prefix); only exact ints are cached (1.0 == 1)."""
    raw = amount_bytes(n)
    b = _long(len(raw)) + raw
    if type(n) is int:
        if len(_AMT_CACHE) >= _AMT_CACHE_MAX:
            _AMT_CACHE.clear()
        _AMT_CACHE[n] = b
    return b


def _date(d: dt.date) -> bytes:
    return _long(d.toordinal() - _EPOCH_ORD)


def _levels(levels: tuple[Level, ...]) -> bytes:
    # Books are the largest records (20 levels per MBP-10 snapshot): one loop, no call per level.
    if not levels:
        return b"\x00"
    amt, cache = _amount, _AMT_CACHE
    parts = [_long(len(levels))]
    add = parts.append
    for lv in levels:
        p, s, c = lv.price, lv.size, lv.count
        add((cache.get(p) if type(p) is int else None) or amt(p))
        add((cache.get(s) if type(s) is int else None) or amt(s))
        add(b"\x00" if c is None else b"\x02" + _long(c))
    add(b"\x00")
    return b"".join(parts)


Enc = Any  # Callable[[Any], bytes]


class _Gen:
    """Source of one record's encoder: ``expr(schema, x)`` is an expression encoding local ``x``."""

    def __init__(self, named: dict[str, Enc]) -> None:
        self.named = named
        self.ns: dict[str, Any] = {
            "_S": _STR_CACHE,
            "_s": _string,
            "_A": _AMT_CACHE,
            "_a": _amount,
            "_long": _long,
            "_C14": _C14,
            "_L14": _L14,
            "_date": _date,
            "_int": int,
        }
        self.n = 0

    def helper(self, fn: Enc) -> str:
        self.n += 1
        name = f"_h{self.n}"
        self.ns[name] = fn
        return name

    def expr(self, schema: Any, x: str) -> str:
        if isinstance(schema, list):
            if len(schema) != 2 or schema[0] != "null":
                raise ValueError(f"unsupported union {schema}")
            return f'(b"\\x00" if {x} is None else b"\\x02" + {self.expr(schema[1], x)})'
        if isinstance(schema, str):
            if schema in self.named:
                return f"{self.helper(self.named[schema])}({x})"
            if schema == "string":
                return f"(_S.get({x}) or _s({x}))"
            if schema in ("long", "int"):
                return _inline_long(x, wide=False)
            if schema == "boolean":
                return f'(b"\\x01" if {x} else b"\\x00")'
            raise ValueError(f"unsupported type {schema}")
        t = schema["type"]
        if schema.get("logicalType") == "decimal":
            return f"((_A.get({x}) if type({x}) is _int else None) or _a({x}))"
        if schema.get("logicalType") == "date":
            return f"_date({x})"
        items = schema.get("items")
        inline_level = isinstance(items, dict) and items.get("name") == "Level"
        if t == "array" and (inline_level or items in ("Level", f"{NAMESPACE}.Level")):
            if inline_level:
                compile_record(items, self.named)  # registers the named type for later references
            return f'(b"\\x00" if not {x} else {self.helper(_levels)}({x}))'  # one side is often empty
        if t in ("array", "map"):
            return f'(b"\\x00" if not {x} else {self.helper(_container(schema, self.named))}({x}))'
        if t == "record":
            return f"{self.helper(compile_record(schema, self.named))}({x})"
        return self.expr(t, x)


def _container(schema: dict[str, Any], named: dict[str, Enc]) -> Enc:
    """Encoder of a non-empty array or map (blocks: count, items, 0)."""
    g = _Gen(named)
    if schema["type"] == "array":
        body = f"_long(len(v)) + b''.join([{g.expr(schema['items'], 'x')} for x in v]) + b'\\x00'"
    else:
        item = g.expr(schema["values"], "x")
        body = f"_long(len(v)) + b''.join([(_S.get(k) or _s(k)) + {item} for k, x in v.items()]) + b'\\x00'"
    exec(f"def enc(v):\n    return {body}\n", g.ns)  # source built from the schema only
    fn: Enc = g.ns["enc"]
    return fn


# Fields whose values are (nearly) unique per record: never part of a cached run.
_UNIQUE = frozenset({"trade_id", "raw_symbol", "detail", "instance", "updated_by"})


def _runs(fields: list[dict[str, Any]]) -> list[list[int]]:
    """Indices of fields grouped into runs: consecutive strings / optional strings / booleans of low
    cardinality (symbol, asset_class, source, venue, stream; side, side_rule; ...) form one run, encoded
    once per distinct value tuple and cached; every other field is a run of its own."""
    out: list[list[int]] = []
    prev = False
    for i, f in enumerate(fields):
        ok = f["type"] in ("string", "boolean", ["null", "string"]) and f["name"] not in _UNIQUE
        if ok and prev:
            out[-1].append(i)
        else:
            out.append([i])
        prev = ok
    return out


def _run_encoder(g: _Gen, fields: list[dict[str, Any]], idx: list[int]) -> tuple[str, str]:
    """(cache name, miss function name) of a run; the miss function encodes the tuple and caches it."""
    cache: dict[tuple[Any, ...], bytes] = {}
    xs = ", ".join(f"x{i}" for i in idx)
    body = ", ".join(g.expr(fields[i]["type"], f"x{i}") for i in idx)
    src = (
        f"def miss(k):\n    {xs}, = k\n    b = b''.join(({body},))\n"
        f"    if len(_c) >= {_STR_CACHE_MAX}:\n        _c.clear()\n    _c[k] = b\n    return b\n"
    )
    ns = dict(g.ns, _c=cache)
    exec(src, ns)  # source built from our schema files only
    return g.helper(cache), g.helper(ns["miss"])


# Nanosecond timestamps (9 varint bytes): their branch is tested first.
_WIDE = frozenset({"ts_event", "ts_recv"})
# Zigzag varint bytes of a non-negative z = n << 1 by size (as in ``_long``): 1-2, 3-4, 5-6, 7-8, 9 bytes.
_V2 = "_L14[z]"
_V4 = "_C14[z & 0x3FFF] + _L14[z >> 14]"
_V6 = "_C14[z & 0x3FFF] + _C14[z >> 14 & 0x3FFF] + _L14[z >> 28]"
_V8 = "_C14[z & 0x3FFF] + _C14[z >> 14 & 0x3FFF] + _C14[z >> 28 & 0x3FFF] + _L14[z >> 42]"
_V9 = (
    "_C14[z & 0x3FFF] + _C14[z >> 14 & 0x3FFF] + _C14[z >> 28 & 0x3FFF] + _C14[z >> 42 & 0x3FFF]"
    " + _L14[z >> 56]"
)


def _inline_long(x: str, *, wide: bool) -> str:
    """Expression encoding long ``x`` with no call: a non-negative int's varint from the tables, inline
    (most fields change on every record: a memo of the last value mostly missed and then cost two calls);
    a negative, out-of-range or non-int value goes to ``_long``, which encodes or raises as before."""
    z = f"(z := {x} << 1)"
    if wide:
        body = (
            f"{_V9} if {z} >= 0x100000000000000 else {_V2} if z < 0x4000 else {_V4} if z < 0x10000000"
            f" else {_V6} if z < 0x40000000000 else {_V8}"
        )
    else:
        body = (
            f"{_V2} if {z} < 0x4000 else {_V4} if z < 0x10000000 else {_V6} if z < 0x40000000000"
            f" else {_V8} if z < 0x100000000000000 else {_V9}"
        )
    return f"(({body}) if type({x}) is _int and 0 <= {x} <= {_INT64_MAX} else _long({x}))"


def compile_record(schema: dict[str, Any], named: dict[str, Enc]) -> Enc:
    """Encoder of a record schema (registered in ``named`` under its short and full name)."""
    fields = schema["fields"]
    names = [f["name"] for f in fields]
    if not all(n.isidentifier() for n in names):
        raise ValueError(f"field names of {schema['name']} are not identifiers")
    g = _Gen(named)
    lines = ["def enc(v):"]
    parts = []
    for i, f in enumerate(fields):
        lines.append(f"    x{i} = v.{f['name']}")
    for run in _runs(fields):
        if len(run) == 1 and fields[run[0]]["name"] in _WIDE and fields[run[0]]["type"] == "long":
            parts.append(_inline_long(f"x{run[0]}", wide=True))
        elif len(run) == 1:
            parts.append(g.expr(fields[run[0]]["type"], f"x{run[0]}"))
        else:
            cache, miss = _run_encoder(g, fields, run)
            key = "(" + ", ".join(f"x{i}" for i in run) + ",)"
            parts.append(f"({cache}.get(k := {key}) or {miss}(k))")
    lines.append("    return b''.join((" + ", ".join(parts) + ",))")
    exec("\n".join(lines) + "\n", g.ns)  # names checked above; the rest comes from our schema files
    fn: Enc = g.ns["enc"]
    named[schema["name"]] = named[f"{schema.get('namespace', NAMESPACE)}.{schema['name']}"] = fn
    return fn


_FAST: dict[str, Enc] = {}


def fast_encoder(name: str) -> Enc:
    """Record -> Avro body (no wire header) for the canonical record ``name``."""
    enc = _FAST.get(name)
    if enc is None:
        enc = _FAST[name] = compile_record(load_schema(name), {})
    return enc
