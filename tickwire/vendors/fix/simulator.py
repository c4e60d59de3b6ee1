"""``tickwire simulate fix``: a FIX 4.4 LP on a real engine (QuickFIX/J 2.3.2 acceptor, data dictionary on).

It streams W then X for its symbols at ``--rate`` ticks per second, rejects unknown symbols with Y and
injects faults on its control port (``--control-port``; commands in ``lp/LpSim.java``): skip outbound
MsgSeqNums, rewind them without PossDup, resend with PossDup, force a logout, drop TCP, go silent.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import Any

from tickwire.simulators.base import SimServer
from tickwire.vendors.fix.lp import LpProcess

DEFAULT_SYMBOLS = "EUR/USD=1.08215,GBP/USD=1.26530,USD/JPY=151.205"


class FixLpSimulator(SimServer):
    """The SimServer face of the Java LP process, for ``tickwire simulate``."""

    name = "fix"

    def __init__(self, lp: LpProcess) -> None:
        super().__init__(lp.host, lp.port, record_frames=False)
        self.lp = lp

    @property
    def url(self) -> str:
        return self.lp.url

    def start(self, timeout: float = 60.0) -> str:
        self.lp.start(timeout)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        if self.loop is not None and self._stopping is not None:
            self.loop.call_soon_threadsafe(self._stopping.set)
        self.lp.stop()

    async def serve_async(self, on_ready: Callable[[], None] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        await asyncio.to_thread(self.lp.start)
        if on_ready is not None:
            on_ready()
        print(f"control 127.0.0.1:{self.lp.control_port}", flush=True)
        try:
            while not self._stopping.is_set():
                if self.lp.proc is None or self.lp.proc.poll() is not None:
                    raise RuntimeError("the FIX LP process exited")
                await asyncio.sleep(0.2)
        finally:
            self.lp.stop()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--control-port", type=int, default=0, help="control port (0 = any free port, printed)")
    p.add_argument("--sender", default="LP_ALPHA", help="the LP's CompID")
    p.add_argument("--targets", default="TICKWIRE", help="comma-separated initiator CompIDs it accepts")
    p.add_argument("--prices", default=DEFAULT_SYMBOLS, help="SYMBOL=start price,... (decimal text)")
    p.add_argument("--store", default="memory", help="QuickFIX/J message store: memory or a directory")


def build(args: argparse.Namespace, common: dict[str, Any]) -> SimServer:
    prices = args.prices
    if common.get("symbols"):  # --symbols given: keep their configured start prices, else 1.00000
        known = dict(kv.split("=", 1) for kv in prices.split(","))
        prices = ",".join(f"{s}={known.get(s, '1.00000')}" for s in common["symbols"])
    lp = LpProcess(
        host=args.host,
        port=args.port,
        control_port=args.control_port,
        sender=args.sender,
        targets=args.targets.split(","),
        symbols=prices,
        rate=float(common.get("rate", 2.0)),
        seed=int(common.get("seed", 1)),
        store=args.store,
    )
    return FixLpSimulator(lp)
