"""Binance spot WebSocket (combined streams, live SUBSCRIBE) with REST exchangeInfo and depth snapshots."""

from __future__ import annotations

from tickwire.contract.vendor import RunComponent, RunContext, VendorSpec


def run_components(ctx: RunContext) -> list[RunComponent]:
    port = ctx.free_port()
    base = f"127.0.0.1:{port}"
    return [
        RunComponent(
            "sim-binance", ["simulate", "binance", "--port", str(port), "--rate", str(ctx.rate)], "simulator"
        ),
        RunComponent(
            "ingest-binance",
            ["ingest", "binance", "--url", f"ws://{base}/stream", "--rest-url", f"http://{base}"],
            "producer",
            wants_metrics_port=True,
        ),
    ]


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
