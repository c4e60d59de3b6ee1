"""Structure-aware mutations of raw payloads, by content type (vendor-neutral).

* JSON / MessagePack: decoded, then 1-3 nodes changed (hostile amounts, symbols, timestamps, integers at
  and past the Avro ranges, wrong types, deleted keys, duplicated elements, deep nesting), re-encoded;
* DBN: record headers walked, then lengths, rtypes, 8-byte fields (timestamps, prices, counts) and
  truncation points changed, records duplicated; rarely a metadata byte;
* tag=value with SOH (content type ``fix``): values of random tags replaced;
* any content type, sometimes: byte-level flips, inserts, deletions, duplicated ranges, truncation, and
  splices with another seed of the same vendor.
"""

from __future__ import annotations

import json
import random
from typing import Any

import msgpack

NOW_MS = 1_764_633_600_000  # 2025-12-02T00:00Z
HOSTILE_AMOUNTS = (
    "1E+999990", "1e+99990", "-7E+400000", "1e-999999", "NaN", "Infinity", "-Infinity", "sNaN", "-0", "0",
    "1e-10", "0.0000000001", "9" * 40, "9" * 29, "9" * 30, "1" * 5000, "", " ", " 1", "1 ", "1_000", "\u0663",
    "\u00b2", "1.5.5", "+1", "-1", "0x10", "1e", ".", "-", "1E+28", "1E+29",
    "99999999999999999999999999999.999999999", "0." + "0" * 200 + "1", "1" + "0" * 200, "1e0009",
    "\u0661\u0662\u0663",
)  # fmt: skip
HOSTILE_SYMBOLS = (
    "AAPL:ticker", "A*", "X>Y", "A B", "A\x00", "\u00dfUSDT", "\u00df-USD", "BTC-USD*", "a" * 100, "",
    "BTC/USD", "SPY251216C00676000", "O:SPY251216C00676000", "BTCUSDT", "ETH-USD", "../x", "A\nB", "A{b}",
    "A.B.C",
    "\u0130USDT", "\ufb01USD", "BRK.B", "ESH6", "EUR/USD", "X" * 65,
)  # fmt: skip
HOSTILE_TIMES = (
    "2025-01-01T-1:00:00Z", "2025-01-01T 1:00:00Z", "2025-01-01T+1:00:00Z", "9999-12-31T23:59:59Z",
    "0000-01-01T00:00:00Z", "2126-01-01T00:00:00Z", "2025-02-30T00:00:00Z", "2025-01-01T00:00:00.1234567891Z",
    "2025-01-01T24:00:00Z", "2025-01-01T00:00:00+99:00", "2025-12-02T23:00:00Z", "1970-01-01T00:00:00Z",
    "2025-12-01T12:00:00.5-23:59", "2025-12-01t12:00:00z", "2025-12-01T12:00:00", "1764633600.123",
)  # fmt: skip
HOSTILE_INTS = (
    0, -1, 1, 2, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63),
    -(2**63) - 1, 10**30, NOW_MS, NOW_MS + 23 * 3_600_000, NOW_MS - 30 * 86_400_000, 4_922_812_800_000,
    NOW_MS * 10**6, 4_922_812_800 * 10**9, 1, 10,
)  # fmt: skip
HOSTILE_OTHER: tuple[Any, ...] = (None, True, False, [], {}, 1.5, 1e308, -0.0, 1e-300, "x", [[[[[[]]]]]])
UNKNOWN_TAGS = ("zz", "new-type", "T", "e", "", "\u00df", "x" * 80)
DBN_INTS = (
    0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, 4_922_812_800 * 10**9, NOW_MS * 10**6 + 23 * 3_600 * 10**9,
    (1 << 32) - 1, 1 << 31, 946_684_800 * 10**9 - 1,
)  # fmt: skip


class Mutator:
    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)

    # -- entry point --

    def mutate(self, payload: bytes, content_type: str, other: bytes | None = None) -> bytes:
        r = self.rng
        if content_type in ("json", "msgpack") and r.random() < 0.85:
            out = self._doc(payload, content_type)
        elif content_type == "dbn" and r.random() < 0.85:
            out = self._dbn(payload)
        elif content_type == "fix" and r.random() < 0.7:
            out = self._tag_value(payload)
        else:
            out = payload
        if out == payload or r.random() < 0.15:
            out = self._bytes(out, other)
        return out

    # -- generic bytes --

    def _bytes(self, data: bytes, other: bytes | None) -> bytes:
        r = self.rng
        b = bytearray(data)
        for _ in range(r.randint(1, 4)):
            op = r.randrange(8)
            n = len(b)
            i = r.randrange(n + 1) if n else 0
            if op == 0 and n:
                b[min(i, n - 1)] ^= 1 << r.randrange(8)
            elif op == 1:
                b[i:i] = bytes(r.randrange(256) for _ in range(r.randint(1, 8)))
            elif op == 2 and n:
                del b[i : i + r.randint(1, 16)]
            elif op == 3 and n:
                j = r.randrange(n)
                b[i:i] = b[j : j + r.randint(1, 64)]
            elif op == 4 and n:
                del b[i:]
            elif op == 5 and other:
                j = r.randrange(len(other))
                b[i:] = other[j:]
            elif op == 6 and n:
                b[min(i, n - 1)] = r.choice(b'"[]{},:\\\x00\xff0-eE.')
            elif op == 7:  # nesting far past any decoder's recursion limit, as text
                k = r.choice((100, 5_000, 50_000))
                b[i:i] = (b"[" if r.random() < 0.5 else b'{"a":') * k
        return bytes(b)

    # -- JSON / MessagePack documents --

    def _doc(self, payload: bytes, content_type: str) -> bytes:
        try:
            if content_type == "msgpack":
                doc = msgpack.unpackb(payload, raw=False, timestamp=0, strict_map_key=False)
            else:
                doc = json.loads(payload)
        except Exception:
            return payload
        holder = [doc]
        for _ in range(self.rng.randint(1, 3)):
            self._mutate_node(holder)
        try:
            if content_type == "msgpack":
                return bytes(msgpack.packb(holder[0], use_bin_type=True))
            return json.dumps(holder[0], ensure_ascii=self.rng.random() < 0.5).encode()
        except (TypeError, ValueError, OverflowError, RecursionError):
            return payload

    def _nodes(self, root: list[Any]) -> list[tuple[Any, Any]]:
        """(container, key) of every node, the root holder included; bounded walk."""
        out: list[tuple[Any, Any]] = [(root, 0)]
        stack: list[Any] = [root[0]]
        while stack and len(out) < 5_000:
            x = stack.pop()
            if isinstance(x, dict):
                for k in list(x):
                    out.append((x, k))
                    stack.append(x[k])
            elif isinstance(x, list):
                for i in range(len(x)):
                    out.append((x, i))
                    stack.append(x[i])
        return out

    def _mutate_node(self, root: list[Any]) -> None:
        r = self.rng
        nodes = self._nodes(root)
        parent, key = nodes[0] if len(nodes) == 1 else r.choice(nodes[1:])
        cur = parent[key]
        op = r.randrange(10)
        if op == 0 and isinstance(parent, dict):
            del parent[key]
        elif op == 1 and isinstance(parent, list):
            parent.insert(key, cur)
        elif op == 2:
            parent[key] = self._deep(cur)
        elif op == 3 and isinstance(parent, dict) and key in ("T", "e", "ev", "type", "channel"):
            parent[key] = r.choice(UNKNOWN_TAGS) + (str(r.randrange(10**6)) if r.random() < 0.5 else "")
        else:
            parent[key] = self._value_like(cur)

    def _deep(self, x: Any) -> Any:
        for _ in range(self.rng.choice((2, 50, 70, 200, 900))):
            x = [x] if self.rng.random() < 0.5 else {"a": x}
        return x

    def _value_like(self, cur: Any) -> Any:
        r = self.rng
        roll = r.random()
        if roll < 0.08:
            return r.choice(HOSTILE_OTHER)
        if isinstance(cur, bool) or roll < 0.12:
            return r.choice((*HOSTILE_INTS, *HOSTILE_AMOUNTS))
        if isinstance(cur, int):
            if r.random() < 0.6:
                return r.choice(HOSTILE_INTS)
            return cur + r.choice((-1, 1, 3_600_000, -3_600_000, 82_800_000, 10**9, 10**12))
        if isinstance(cur, float):
            return r.choice((*HOSTILE_AMOUNTS, *HOSTILE_INTS, float(r.choice(HOSTILE_INTS))))
        if isinstance(cur, str):
            if cur and r.random() < 0.3:  # a near miss: one odd character in the real text
                i = r.randrange(len(cur) + 1)
                return cur[:i] + r.choice(":*> \x00\u00df\u0663eE+-._/") + cur[i:]
            return r.choice(r.choice((HOSTILE_AMOUNTS, HOSTILE_SYMBOLS, HOSTILE_TIMES)))
        if isinstance(cur, (list, dict)) and cur and r.random() < 0.5:
            return cur * 2 if isinstance(cur, list) else {**cur, **{f"{k}_": v for k, v in cur.items()}}
        return r.choice(HOSTILE_OTHER)

    # -- DBN --

    def _dbn(self, payload: bytes) -> bytes:
        r = self.rng
        if payload[:3] != b"DBN" or len(payload) < 8:
            return payload
        md_end = 8 + int.from_bytes(payload[4:8], "little")
        starts: list[int] = []
        pos = md_end
        while pos + 16 <= len(payload) and len(starts) < 10_000:
            starts.append(pos)
            step = payload[pos] * 4
            if step < 16:
                break
            pos += step
        b = bytearray(payload)
        if not starts:
            return payload
        for _ in range(r.randint(1, 3)):
            s = r.choice(starts)
            size = max(16, b[s] * 4) if s < len(b) else 16
            op = r.randrange(8)
            if op == 0 and s < len(b):
                b[s] = r.choice((0, 1, 3, 4, b[s] - 1, b[s] + 1, 255)) & 0xFF
            elif op == 1 and s + 1 < len(b):
                b[s + 1] = r.choice((0, 1, 10, 17, 19, 21, 22, 23, 24, 32, 160, 197, 255, r.randrange(256)))
            elif op == 2 and len(b) > md_end:
                del b[r.randrange(md_end, len(b)) :]
            elif op == 3:
                b[s:s] = b[s : s + size]
            elif op == 4:
                off = s + 8 * r.randrange(1, max(2, size // 8))
                b[off : off + 8] = r.choice(DBN_INTS).to_bytes(8, "little")
            elif op == 5 and md_end > 8:
                i = r.randrange(8, md_end)
                b[i] ^= 1 << r.randrange(8)
            elif op == 6:
                off = s + r.randrange(size)
                b[off : off + 4] = r.choice((0, 1, (1 << 32) - 1, 1 << 31)).to_bytes(4, "little")
            else:
                b[s + 4 : s + 8] = r.randrange(1 << 32).to_bytes(4, "little")  # instrument_id
        return bytes(b)

    # -- tag=value (SOH-separated) --

    def _tag_value(self, payload: bytes) -> bytes:
        r = self.rng
        fields = payload.split(b"\x01")
        for _ in range(r.randint(1, 3)):
            i = r.randrange(len(fields))
            tag, eq, _value = fields[i].partition(b"=")
            if not eq:
                continue
            pool = r.choice((HOSTILE_AMOUNTS, HOSTILE_SYMBOLS, HOSTILE_TIMES, tuple(map(str, HOSTILE_INTS))))
            fields[i] = tag + b"=" + r.choice(pool).encode("utf-8", "surrogatepass")
            if r.random() < 0.2:
                fields.insert(i, fields[i])
        return b"\x01".join(fields)
