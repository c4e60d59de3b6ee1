"""Coinbase Exchange WebSocket feed (heartbeat, ticker, matches, level2) with REST products."""

from __future__ import annotations

from tickwire.contract.vendor import RunComponent, RunContext, VendorSpec, simulated_feed


def run_components(ctx: RunContext) -> list[RunComponent]:
    return simulated_feed(ctx, "coinbase", ws_path="", rest=True)


SPEC = VendorSpec(
    name="coinbase",
    summary=__doc__ or "",
    parser="tickwire.vendors.coinbase.parser:PARSER",
    ingest="tickwire.vendors.coinbase.adapter",
    simulator="tickwire.vendors.coinbase.simulator",
    run="tickwire.vendors.coinbase:run_components",
    bar_source=True,
    control_vendors=("coinbase",),
)
