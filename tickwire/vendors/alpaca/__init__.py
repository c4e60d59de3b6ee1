"""Alpaca market data: stocks (v2 iex/sip) and crypto (v1beta3) WebSocket, JSON or MessagePack."""

from __future__ import annotations

import os

from tickwire.contract.vendor import RunComponent, RunContext, folder_spec, simulated_feed


def run_components(ctx: RunContext) -> list[RunComponent]:
    """Both feeds; with ALPACA_API_KEY/ALPACA_SECRET_KEY set, the real endpoints instead of simulators."""
    feeds = (
        ("stocks", "/v2/iex", ("AAPL", "SPY", "QQQ")),
        ("crypto", "/v1beta3/crypto/us", ("BTC/USD", "ETH/USD")),
    )
    out: list[RunComponent] = []
    for feed, path, symbols in feeds:
        if os.environ.get("ALPACA_API_KEY") and os.environ.get("ALPACA_SECRET_KEY"):
            argv = ["ingest", "alpaca", "--feed", feed]
            out.append(RunComponent(f"ingest-alpaca-{feed}", argv, "producer", wants_metrics_port=True))
            continue
        sim_args = ("--symbols", *symbols, "--bar-interval", "5")
        out += simulated_feed(
            ctx, "alpaca", ws_path=path, name=feed, sim_args=sim_args, ingest_args=("--feed", feed)
        )
    return out


SPEC = folder_spec(
    __name__,
    __doc__,
    control_vendors=("alpaca", "alpaca-crypto"),
    # Seed 000's consumers subscribe bars and trades per symbol through Redis: these two stream types.
    legacy_control=(
        ("stock", ("alpaca:trades", "alpaca:bars")),
        ("crypto", ("alpaca-crypto:trades", "alpaca-crypto:bars")),
    ),
)
