"""The Redis bridge's key names, and which records a key belongs to (to escalate permanent errors).

A permanent write error names keys (a legacy key of the wrong type) or none (out of memory: every
record); :func:`records_of` maps them back to the batch's records, which ``BridgeLoop`` sends to
``bridge.redis.dlq`` after ``permanent_error_attempts`` attempts (see ``tickwire.bridges.batch``).
"""

from __future__ import annotations

from typing import Any

from tickwire.bridges import metrics as m
from tickwire.bridges import redis_idem as idem
from tickwire.bridges import shapes
from tickwire.bridges.batch import Item, PermanentWriteError
from tickwire.contract.records import Bar, BookUpdate, Quote, Trade


class Keys:
    """Every Redis key and channel name the bridge touches, with the isolation prefix."""

    def __init__(self, prefix: str, app_id: str) -> None:
        self.p = prefix
        self.offsets = f"{prefix}tickwire:bridge:{app_id}:offsets"
        self.versions = f"{prefix}tickwire:bridge:{app_id}:seen"
        self._seen = f"{prefix}tickwire:bridge:{app_id}:seen:"
        self.stale = f"{prefix}monitoring:data:stale"

    def seen(self, wkey: str) -> str:
        return self._seen + wkey

    def ticker(self, sym: str) -> str:
        return f"{self.p}market:{sym}:ticker"

    def trades(self, sym: str) -> str:
        return f"{self.p}market:{sym}:trades"

    def bars(self, sym: str, timeframe: str) -> str:
        return f"{self.p}market:{sym}:bars:{shapes.BAR_KEY_SUFFIX.get(timeframe, timeframe)}"

    def book(self, sym: str) -> str:
        return f"{self.p}market:{sym}:book"

    def book_state(self, sym: str, side: str) -> str:
        return f"{self.p}tickwire:book:{sym}:{side}"

    def trades_channel(self, sym: str) -> str:
        return f"{self.p}market_trades:{sym}"

    def bars_channel(self, sym: str) -> str:
        return f"{self.p}market_data:{sym}"

    def heartbeat(self, component: str) -> str:
        return f"{self.p}heartbeat:{component}"

    def of(self, it: Item) -> tuple[str, ...]:
        """The keys reading or writing ``it`` touches (the bridge's shared hashes excepted)."""
        rec = it.record
        if not isinstance(rec, Trade | Quote | Bar | BookUpdate):
            return ()
        sym = rec.symbol
        seen = self.seen(idem.window_key(rec))
        if isinstance(rec, Trade):
            return (self.trades(sym), self.ticker(sym), seen)
        if isinstance(rec, Quote):
            return (self.ticker(sym), seen)
        if isinstance(rec, Bar):
            return (self.bars(sym, rec.timeframe), seen)
        return (self.ticker(sym), self.book_state(sym, "bids"), self.book_state(sym, "asks"), seen)


def permanent_reason(exc: BaseException) -> str | None:
    """``wrong_type`` / ``oom`` for a Redis error that no retry can cure, else None (an outage: retry)."""
    text = str(exc)
    if text.startswith("WRONGTYPE"):
        return "wrong_type"
    # redis-py raises OutOfMemoryError for "OOM ..." replies, its text without the "OOM" prefix.
    if (
        type(exc).__name__ == "OutOfMemoryError"
        or text.startswith("OOM")
        or "used memory > 'maxmemory'" in text
    ):
        return "oom"
    return None


def records_of(k: Keys, items: list[Item], bad: dict[str, str]) -> list[Item]:
    """The items touching any key of ``bad`` (key -> what was found there)."""
    return [it for it in items if any(key in bad for key in k.of(it))]


def wrong_type(k: Keys, items: list[Item], bad: dict[str, str], where: str) -> PermanentWriteError:
    """The error for keys of the wrong type found by a read or by the script's pre-check. A key that
    maps to no record (one of the bridge's own hashes) stands for the whole batch."""
    offending = records_of(k, items, bad)
    detail = ", ".join(f"{key} is a {t}" for key, t in sorted(bad.items()))
    if not offending:
        return PermanentWriteError("wrong_type", f"WRONGTYPE ({where}): {detail}", items, ("*",))
    return PermanentWriteError("wrong_type", f"WRONGTYPE ({where}): {detail}", offending, tuple(bad))


def check_reads(
    k: Keys, items: list[Item], res: list[Any], tps: list[Any], wkeys: list[str], tick_syms: list[str],
    book_syms: list[str], bar_keys: list[str],
) -> None:  # fmt: skip
    """Raise for a failed read of the writer's cache load (``res``: per-command results, in the order
    ``RedisWriter._load`` queued them): a wrong-typed key as a permanent error, anything else as is."""
    errs = [(j, r) for j, r in enumerate(res) if isinstance(r, Exception)]
    if not errs:
        return
    names = [k.offsets] if tps else []
    names += [k.versions] if wkeys else []
    names += [k.seen(w) for w in wkeys] + [k.ticker(sym) for sym in tick_syms]
    names += [k.book_state(sym, side) for sym in book_syms for side in ("bids", "asks")]
    names += bar_keys
    bad: dict[str, str] = {}
    for j, err in errs:
        if permanent_reason(err) != "wrong_type":
            raise err  # an outage or our bug: retried
        bad[names[j]] = "key of another type"
    raise wrong_type(k, items, bad, "read")


def bound_caches(cap: int, **caches: dict[Any, Any]) -> None:
    """The writer's per-symbol caches are re-read from Redis on demand: past ``cap`` entries they are
    dropped (``last_update``, the staleness report's input, keeps its most recent half)."""
    for name, cache in caches.items():
        if len(cache) > cap:
            if name == "last_update":
                keep = sorted(cache.items(), key=lambda e: e[1])[-(cap // 2) :]
                cache.clear()
                cache.update(keep)
            else:
                cache.clear()
        m.CACHE.labels("redis", name).set(len(cache))
