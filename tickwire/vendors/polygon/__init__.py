"""Polygon.io / Massive WebSocket: stocks (T, Q, A, AM) and options (T, Q) with a strike manager."""

from __future__ import annotations

import os

from tickwire.contract.vendor import RunComponent, RunContext, folder_spec


def run_components(ctx: RunContext) -> list[RunComponent]:
    """Simulator, stocks producer and options producer (its strike manager runs inside it); with
    POLYGON_API_KEY or MASSIVE_API_KEY set, the real endpoints instead of the simulator."""
    real = bool(os.environ.get("POLYGON_API_KEY") or os.environ.get("MASSIVE_API_KEY"))
    out: list[RunComponent] = []
    urls: dict[str, list[str]] = {"stocks": [], "options": []}
    if not real:
        port = ctx.free_port()
        sim = [
            "simulate",
            "polygon",
            "--port",
            str(port),
            "--rate",
            str(ctx.rate),
            "--symbols",
            "SPY",
            "AAPL",
        ]
        out.append(RunComponent("sim-polygon", sim, "simulator"))
        base = f"ws://127.0.0.1:{port}"
        urls["stocks"] = ["--url", f"{base}/stocks"]
        contracts = f"http://127.0.0.1:{port}/v3/reference/options/contracts"
        urls["options"] = ["--url", f"{base}/options", "--contracts-url", contracts]
    for market, url in urls.items():
        argv = ["ingest", "polygon", "--market", market, *url]
        out.append(RunComponent(f"ingest-polygon-{market}", argv, "producer", wants_metrics_port=True))
    return out


SPEC = folder_spec(__name__, __doc__, control_vendors=("polygon", "polygon-options"))
