"""Idempotence of the Redis bridge by record identity, applied atomically in Redis (see README "Live path").

Two filters, both checked before a record is written and advanced in the same atomic step as its writes:

1. Offsets: per consumed topic-partition, the highest Kafka offset applied (hash
   ``tickwire:bridge:{app_id}:offsets``). Skips what a restarted or retried bridge reads again.
2. Identity windows: per key ``{Type}|{source}|{stream}|{session}|{symbol}`` (bars: ``Bar:{timeframe}``),
   the identities ``(seq, sub_seq)`` of the last ``dedupe_window`` records written. Skips a record the
   normalizer re-produced after an aborted transaction (the bridge reads uncommitted records, so it saw
   and wrote the aborted copy; the copy that gets committed has the same identity, at a higher offset).
   A set, not a high-water mark: one symbol's records reach a canonical partition from several raw
   partitions (single-symbol frames keyed by symbol, multi-symbol frames keyed by stream) and several
   normalizer workers, so ``seq`` is not monotonic per key; aggregated bars carry the identity of their
   last trade, which is not monotonic in bar order either.

The window lives in the bridge's memory (a set, O(1) per record) and durably in Redis as a list of packed
chunks (one ``RPUSH`` per key per batch, trimmed from the left) with a version per key in the hash
``tickwire:bridge:{app_id}:seen``. Every batch is ONE Lua script: it compares each touched key's version
with the one the bridge's cache was built from (compare-and-set; a second bridge instance that wrote in
between, e.g. during a rebalance, makes it fail before any write) and only then runs the batch's
commands (PUBLISHes, lists, tickers, books, offsets, window chunks) in record order. Redis runs a script
atomically, so a legacy subscriber never sees half a batch twice and never a PUBLISH whose identity is
not recorded. On a failed compare the bridge drops its caches, re-reads and recomputes the batch.
"""

from __future__ import annotations

from array import array
from collections import deque
from typing import Any

import msgpack

from tickwire.contract.records import Bar, Canonical

# ARGV: versions hash, n, n x (field, expected version or "", new version), then ONE msgpack array of
# commands ([name, args...] each), decoded by Redis' bundled cmsgpack: one argument instead of ~4 per
# record (redis-py packs every argument in Python; that was the batch's largest client-side cost).
# Old-spec raw strings (use_bin_type=False): Redis 7.0's cmsgpack rejects the bin types.
# Returns 0 (nothing written) if any version differs, a flat list {key, type, ...} of the keys whose
# type the batch's list/hash commands cannot write (WRONGTYPE: a legacy key of another type; nothing
# written either), else 1. Redis does not roll a script back: a command failing half-way would leave
# the batch half-applied, so every check is done before the first write (an OOM is refused at the first
# write, before anything was written).
SCRIPT = """
local vkey = ARGV[1]
local n = tonumber(ARGV[2])
local i = 3
for _ = 1, n do
  local cur = redis.call('HGET', vkey, ARGV[i])
  if (cur or '') ~= ARGV[i + 1] then return 0 end
  i = i + 3
end
local cmds = cmsgpack.unpack(ARGV[3 + 3 * n])
local want = {LPUSH='list', RPUSH='list', LTRIM='list', LPOP='list', HSET='hash', HDEL='hash'}
local checked = {}
local bad = {}
for j = 1, #cmds do
  local name, key = cmds[j][1], cmds[j][2]
  if name == 'DEL' then
    checked[key] = true
  elseif want[name] and not checked[key] then
    checked[key] = true
    local t = redis.call('TYPE', key)['ok']
    if t ~= 'none' and t ~= want[name] then
      bad[#bad + 1] = key
      bad[#bad + 1] = t
    end
  end
end
if #bad > 0 then return bad end
i = 3
for _ = 1, n do
  redis.call('HSET', vkey, ARGV[i], ARGV[i + 2])
  i = i + 3
end
for j = 1, #cmds do
  redis.call(unpack(cmds[j]))
end
return 1
"""

MAX_ARGS = 4000  # per command: well inside Lua's unpack/C-stack limit (~8000)


def window_key(rec: Canonical) -> str:
    kind = f"Bar:{rec.timeframe}" if isinstance(rec, Bar) else type(rec).__name__
    return f"{kind}|{rec.source}|{rec.stream}|{rec.session}|{rec.symbol}"


def ident(rec: Canonical) -> int:
    return (rec.seq << 32) | rec.sub_seq


class Window:
    """The last ``limit`` identities of one key, in chunks as stored in Redis (oldest first)."""

    __slots__ = ("chunks", "limit", "seen", "size", "version")

    def __init__(self, version: str, stored: list[bytes], limit: int) -> None:
        self.version = version
        self.limit = limit
        self.seen: set[int] = set()
        self.chunks: deque[list[int]] = deque()
        self.size = 0
        for blob in stored:
            flat = array("q")
            flat.frombytes(blob)
            ids = [(flat[j] << 32) | flat[j + 1] for j in range(0, len(flat), 2)]
            self.chunks.append(ids)
            self.seen.update(ids)
            self.size += len(ids)

    def add_chunk(self, ids: list[int]) -> tuple[bytes, int]:
        """Append a written chunk (already in ``seen``); returns its blob and how many old chunks to drop."""
        self.chunks.append(ids)
        self.size += len(ids)
        drop = 0
        while len(self.chunks) > 1 and self.size - len(self.chunks[0]) >= self.limit:
            old = self.chunks.popleft()
            self.size -= len(old)
            self.seen.difference_update(old)
            drop += 1
        flat = array("q")
        for i in ids:
            flat.append(i >> 32)
            flat.append(i & 0xFFFFFFFF)
        return flat.tobytes(), drop


class Script:
    """Builds one batch's script call: version checks plus commands in order."""

    def __init__(self, versions_key: str) -> None:
        self.vkey = versions_key
        self.checks: list[str] = []
        self.cmds: list[tuple[Any, ...]] = []

    def check(self, field: str, expected: str, new: str) -> None:
        self.checks += (field, expected, new)

    def cmd(self, *args: Any) -> None:
        self.cmds.append(args)

    def cmd_many(self, name: str, key: str, values: list[Any]) -> None:
        """``name key v1 v2 ...`` split into bounded commands (LPUSH, HSET pairs must stay even)."""
        step = MAX_ARGS - (MAX_ARGS % 2)
        for i in range(0, len(values), step):
            self.cmd(name, key, *values[i : i + step])

    def argv(self) -> list[Any]:
        return [self.vkey, len(self.checks) // 3, *self.checks, msgpack.packb(self.cmds, use_bin_type=False)]
