"""Simulators of a streaming market: the constructor plumbing they share on top of `SimServer`.

`MarketSim`: ``mode`` ("generate": the simulator makes up ``rate`` events a second from ``rng``, seeded
by ``seed`` so a run can be repeated; anything else is the vendor's). `ReplayMarketSim` adds a recorded
session for ``mode="replay"``: ``recording`` paced by ``speed`` (0 = as fast as possible), restarted when
``loop_replay``. A vendor sets its own ``default_rate``; every other keyword goes on to `SimServer`.
"""

from __future__ import annotations

import random
from typing import Any

from tickwire.recording import Recording
from tickwire.simulators.base import SimServer


class MarketSim(SimServer):
    default_rate = 20.0  # generated events per second when the caller names none

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        mode: str = "generate",
        rate: float | None = None,
        seed: int | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(host, port, **kw)
        self.mode = mode
        self.rate = self.default_rate if rate is None else rate
        self.rng = random.Random(seed)


class ReplayMarketSim(MarketSim):
    def __init__(
        self,
        *args: Any,
        recording: Recording | None = None,
        speed: float = 1.0,
        loop: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(*args, **kw)
        self.recording = recording or Recording()
        self.speed, self.loop_replay = speed, loop
