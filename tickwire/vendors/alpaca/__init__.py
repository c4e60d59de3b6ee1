"""Alpaca market data: stocks (v2 iex/sip) and crypto (v1beta3) WebSocket, JSON or MessagePack."""

from __future__ import annotations

import os

from tickwire.contract.vendor import RunComponent, RunContext, VendorSpec


def run_components(ctx: RunContext) -> list[RunComponent]:
    """Both feeds; with ALPACA_API_KEY/ALPACA_SECRET_KEY set, the real endpoints instead of simulators."""
    real = bool(os.environ.get("ALPACA_API_KEY") and os.environ.get("ALPACA_SECRET_KEY"))
    out: list[RunComponent] = []
    feeds = (
        ("stocks", "/v2/iex", ["AAPL", "SPY", "QQQ"]),
        ("crypto", "/v1beta3/crypto/us", ["BTC/USD", "ETH/USD"]),
    )
    for feed, path, symbols in feeds:
        url: list[str] = []
        if not real:
            port = ctx.free_port()
            sim = ["simulate", "alpaca", "--port", str(port), "--rate", str(ctx.rate), "--symbols", *symbols]
            out.append(RunComponent(f"sim-alpaca-{feed}", [*sim, "--bar-interval", "5"], "simulator"))
            url = ["--url", f"ws://127.0.0.1:{port}{path}"]
        out.append(
            RunComponent(
                f"ingest-alpaca-{feed}",
                ["ingest", "alpaca", "--feed", feed, *url],
                "producer",
                wants_metrics_port=True,
            )
        )
    return out


SPEC = VendorSpec(
    name="alpaca",
    summary=__doc__ or "",
    parser="tickwire.vendors.alpaca.parser:PARSER",
    ingest="tickwire.vendors.alpaca.adapter",
    simulator="tickwire.vendors.alpaca.simulator",
    run="tickwire.vendors.alpaca:run_components",
    control_vendors=("alpaca", "alpaca-crypto"),
)
