"""Vendor-neutral pieces of simulated markets: open-loop pacing, exact price walks, time formats,
recorded-session files and their paced replay."""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tickwire.recording import load_recording
from tickwire.resources import recorded_dir

if TYPE_CHECKING:
    from tickwire.simulators.base import Conn, SimServer


async def paced(rate: float, tick: float = 0.001) -> AsyncIterator[int]:
    """Yield how many events are due, on a fixed timetable (event k due at t0 + k/rate).

    Open loop: a slow consumer or a late wake-up never shifts the schedule, the backlog is emitted at once
    (no coordinated omission). Wakes at most every `tick` seconds so high rates cost few timer calls.
    """
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    k = 0
    while True:
        now = loop.time()
        due = int((now - t0) * rate) + 1
        if due > k:
            yield due - k
            k = due
        await asyncio.sleep(max(tick, t0 + k / rate - loop.time()))


def fmt_fixed(units: int, decimals: int) -> str:
    """Integer count of 10**-decimals units -> fixed decimal text, e.g. (15025, 2) -> '150.25'."""
    sign = "-" if units < 0 else ""
    q, r = divmod(abs(units), 10**decimals)
    return f"{sign}{q}.{r:0{decimals}d}" if decimals else f"{sign}{q}"


def fmt_trim(units: int, decimals: int) -> str:
    """Like fmt_fixed without trailing zeros (JSON-number style): (1502500, 4) -> '150.25'."""
    text = fmt_fixed(units, decimals)
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass
class Walk:
    """A price in integer units moving by up to `span` ticks of `tick` units per event (>= 1 tick)."""

    units: int
    tick: int = 1
    span: int = 3
    rng: random.Random = field(default_factory=random.Random)

    def next(self) -> int:
        self.units = max(self.tick, self.units + self.rng.randint(-self.span, self.span) * self.tick)
        return self.units


def now_ns() -> int:
    return time.time_ns()


def rfc3339_ns(ns: int) -> str:
    """'2025-01-02T15:04:05.123456789Z' (Alpaca style, nanoseconds)."""
    s, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def iso_us(ns: int) -> str:
    """'2021-04-17T16:43:37.077736Z' (Coinbase style, microseconds)."""
    s, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac // 1000:06d}Z"


async def replay(
    sim: SimServer,
    conn: Conn,
    frames: list[tuple[float, bytes]],
    *,
    speed: float = 1.0,
    loop: bool = False,
    select: Callable[[Conn, bytes], bytes | None] | None = None,
) -> None:
    """Send recorded frames at recorded pacing / `speed` (0 = as fast as possible), exact bytes.

    `select` may drop a frame (None) or return the exact bytes to send (e.g. a slice); a pending
    `skip_seq` fault drops the next frame, which makes a genuine vendor sequence gap.
    """
    aio = asyncio.get_running_loop()
    while frames:
        start, base = aio.time(), frames[0][0]
        for ts, payload in frames:
            if speed > 0:
                delay = start + (ts - base) / speed - aio.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif conn.frames % 256 == 0:
                await asyncio.sleep(0)  # stay fair to other connections at full speed
            data = payload if select is None else select(conn, payload)
            if data is None:
                continue
            if sim.take_skip():
                continue
            if not conn.open:
                return
            await sim.send(conn, data)
        if not loop:
            return


def add_replay_arguments(p: argparse.ArgumentParser) -> None:
    """Options of a simulator that can serve a recorded session (``--mode replay``)."""
    p.add_argument(
        "--file",
        action="append",
        help="recorded session file(s) for replay (ws file and its REST .0 file); default: shared recordings",
    )
    p.add_argument(
        "--speed", type=float, default=1.0, help="replay pacing multiplier; 0 = as fast as possible"
    )
    p.add_argument("--loop", action="store_true", help="restart the replay when it ends")


def replay_kwargs(args: argparse.Namespace, default_files: tuple[str, ...]) -> dict[str, Any]:
    """Simulator keyword arguments for the replay options; default files are under the shared recordings."""
    files = list(args.file or [])
    if args.mode == "replay" and not files:
        files = [str(recorded_dir() / f) for f in default_files]
    return {"recording": load_recording(*files) if files else None, "speed": args.speed, "loop": args.loop}
