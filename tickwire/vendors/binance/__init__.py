"""Binance spot WebSocket (combined streams, live SUBSCRIBE) with REST exchangeInfo and depth snapshots."""

from __future__ import annotations

from tickwire.contract.vendor import RunComponent, RunContext, VendorSpec, simulated_feed


def run_components(ctx: RunContext) -> list[RunComponent]:
    return simulated_feed(ctx, "binance", ws_path="/stream", rest=True)


SPEC = VendorSpec(
    name="binance",
    summary=__doc__ or "",
    parser="tickwire.vendors.binance.parser:PARSER",
    ingest="tickwire.vendors.binance.adapter",
    simulator="tickwire.vendors.binance.simulator",
    run="tickwire.vendors.binance:run_components",
    bar_source=True,
    control_vendors=("binance",),
)
