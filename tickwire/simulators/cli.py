"""`tickwire simulate <vendor>`: run one vendor simulator until interrupted (vendors from the registry).

``--sent-log FILE``: when the simulator stops, FILE holds everything it sent, byte-exact, as JSON lines
(written whole at stop via a temporary file, so a reader never sees half of it):
``{"kind": "ws", "conn": ID, "path": PATH, "data": BASE64}`` per WebSocket frame in send order (fault
frames included) and ``{"kind": "rest", "path": PATH, "query": {...}, "status": N, "data": BASE64}`` per
REST answer. End-to-end tests count a pipeline's output against it. Frames are kept in memory until then,
and only simulators that honour ``record_frames`` log WebSocket frames.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

from tickwire import logs, vendors
from tickwire.logs import kv
from tickwire.simulators.base import RestAnswer, SimServer

log = logging.getLogger(__name__)


def build(args: argparse.Namespace) -> SimServer:
    # Recording costs memory for the whole run: only when a sent log was asked for.
    common: dict[str, Any] = {"mode": args.mode, "rate": args.rate, "record_frames": bool(args.sent_log)}
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
        vp.add_argument(
            "--sent-log",
            type=lambda v: Path(v) if v else None,  # "" = off (a compose file's unset ${VAR:-})
            help="at stop, write every frame and REST answer sent (JSON lines)",
        )
        vendors.load(spec.simulator or "").add_arguments(vp)
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    logs.setup()
    sim = build(args)
    rest_log = _record_rest(sim) if args.sent_log else []

    def ready() -> None:
        # Machine-readable line for supervisors and scripts; SIGTERM stops cleanly (exit 0).
        assert sim.loop is not None
        sim.loop.add_signal_handler(signal.SIGTERM, sim.stop)
        print(f"listening {sim.url}", flush=True)

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(sim.serve_async(on_ready=ready))
    finally:
        if args.sent_log:
            write_sent_log(sim, rest_log, args.sent_log)
    return 0


RestEntry = tuple[str, dict[str, str], RestAnswer]


def _record_rest(sim: SimServer) -> list[RestEntry]:
    """Wrap the simulator's REST hook so every answer it gives is kept for the sent log."""
    answers: list[RestEntry] = []
    serve = sim.rest

    def rest(method: str, path: str, query: dict[str, str]) -> RestAnswer | None:
        answer = serve(method, path, query)
        if answer is not None:
            answers.append((path, dict(query), answer))
        return answer

    # The hook is a plain method the harness calls per request; wrapping this one instance keeps the
    # vendor classes and the harness unchanged.
    sim.rest = rest  # type: ignore[method-assign]
    return answers


def write_sent_log(sim: SimServer, rest_log: list[RestEntry], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    n_ws = 0
    with tmp.open("w") as fh:
        for c in sim.connections:
            for data in c.sent:
                doc = {"kind": "ws", "conn": c.id, "path": c.path, "data": base64.b64encode(data).decode()}
                fh.write(json.dumps(doc) + "\n")
                n_ws += 1
        for rpath, query, (status, body, _ctype) in rest_log:
            b64 = base64.b64encode(body).decode()
            entry = {"kind": "rest", "path": rpath, "query": query, "status": status, "data": b64}
            fh.write(json.dumps(entry) + "\n")
    os.replace(tmp, path)
    log.info("sent log written %s", kv(path=path, ws_frames=n_ws, rest_answers=len(rest_log)))
