"""`tickwire simulate <alpaca|binance|coinbase>`: run one vendor simulator until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

from tickwire import logs
from tickwire.simulators.base import SimServer
from tickwire.simulators.market import load_recording

log = logging.getLogger(__name__)
RECORDED = Path("/work/shared/data/recorded")
# Default recorded session + REST answers for replay mode, per vendor.
DEFAULT_FILES = {
    "binance": ("cryptofeed-BINANCE.ws.1.0", "cryptofeed-BINANCE.0"),
    "coinbase": ("cryptofeed-COINBASE.ws.28.0", "cryptofeed-COINBASE.0"),
}


def build(args: argparse.Namespace) -> SimServer:
    kw: dict[str, Any] = {"mode": args.mode, "rate": args.rate, "record_frames": False}
    if args.symbols:
        kw["symbols"] = args.symbols
    if args.seed is not None:
        kw["seed"] = args.seed
    if args.vendor == "alpaca":
        from tickwire.simulators.alpaca import AlpacaSimulator

        if args.mode == "replay":
            raise SystemExit("alpaca: replay mode needs a recorded Alpaca session; none is available")
        return AlpacaSimulator(args.host, args.port, batch=args.batch, bar_interval=args.bar_interval, **kw)
    files = args.file or []
    if args.mode == "replay" and not files:
        files = [str(RECORDED / f) for f in DEFAULT_FILES[args.vendor]]
    kw |= {"recording": load_recording(*files) if files else None, "speed": args.speed, "loop": args.loop}
    if args.vendor == "binance":
        from tickwire.simulators.binance import BinanceSimulator

        return BinanceSimulator(args.host, args.port, max_lifetime=args.max_lifetime, **kw)
    from tickwire.simulators.coinbase import CoinbaseSimulator

    return CoinbaseSimulator(args.host, args.port, **kw)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tickwire simulate", description=__doc__)
    p.add_argument("vendor", choices=("alpaca", "binance", "coinbase"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = any free port (printed at start)")
    p.add_argument("--mode", choices=("generate", "replay"), default="generate")
    p.add_argument("--rate", type=float, default=50.0, help="generated events per second (open loop)")
    p.add_argument("--symbols", nargs="+", help="symbols / products to generate")
    p.add_argument(
        "--file",
        action="append",
        help="recorded session file(s) for replay (ws file and its REST .0 file); default: shared recordings",
    )
    p.add_argument(
        "--speed", type=float, default=1.0, help="replay pacing multiplier; 0 = as fast as possible"
    )
    p.add_argument("--loop", action="store_true", help="restart the replay when it ends")
    p.add_argument("--batch", type=int, default=1, help="alpaca: max messages per frame")
    p.add_argument("--bar-interval", type=float, default=60.0, help="alpaca: generated bar interval, seconds")
    p.add_argument("--max-lifetime", type=float, default=86_400.0, help="binance: connection lifetime, s")
    p.add_argument("--seed", type=int)
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    logs.setup()
    sim = build(args)

    def ready() -> None:
        # Machine-readable line for supervisors and scripts; SIGTERM stops cleanly (exit 0).
        assert sim.loop is not None
        sim.loop.add_signal_handler(signal.SIGTERM, sim.stop)
        print(f"listening {sim.url}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(sim.serve_async(on_ready=ready))
    return 0
