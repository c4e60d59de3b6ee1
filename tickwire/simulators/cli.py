"""`tickwire simulate <vendor>`: run one vendor simulator until interrupted (vendors from the registry)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

from tickwire import logs, vendors
from tickwire.simulators.base import SimServer

log = logging.getLogger(__name__)


def build(args: argparse.Namespace) -> SimServer:
    common: dict[str, Any] = {"mode": args.mode, "rate": args.rate, "record_frames": False}
    if args.symbols:
        common["symbols"] = args.symbols
    if args.seed is not None:
        common["seed"] = args.seed
    sim: SimServer = vendors.load(vendors.spec(args.vendor).simulator or "").build(args, common)
    sim.control_token = os.environ.get(args.control_token_env) or None
    return sim


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tickwire simulate", description=__doc__)
    sub = p.add_subparsers(dest="vendor", required=True, metavar="VENDOR")
    for spec in vendors.with_("simulator"):
        vp = sub.add_parser(spec.name, help=f"{spec.name} simulator", description=spec.summary)
        vp.add_argument("--host", default="127.0.0.1")
        vp.add_argument(
            "--control-token-env",
            default="TICKWIRE_SIM_CONTROL_TOKEN",
            help="environment variable holding the /control/* bearer token (required off loopback)",
        )
        vp.add_argument("--port", type=int, default=0, help="0 = any free port (printed at start)")
        vp.add_argument("--mode", choices=("generate", "replay"), default="generate")
        vp.add_argument("--rate", type=float, default=50.0, help="generated events per second (open loop)")
        vp.add_argument("--symbols", nargs="+", help="symbols / products to generate")
        vp.add_argument("--seed", type=int)
        vendors.load(spec.simulator or "").add_arguments(vp)
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
