"""Coinbase Exchange WebSocket feed (heartbeat, ticker, matches, level2) with REST products."""

from __future__ import annotations

from tickwire.contract.vendor import RunComponent, RunContext, VendorSpec


def run_components(ctx: RunContext) -> list[RunComponent]:
    port = ctx.free_port()
    base = f"127.0.0.1:{port}"
    return [
        RunComponent(
            "sim-coinbase",
            ["simulate", "coinbase", "--port", str(port), "--rate", str(ctx.rate)],
            "simulator",
        ),
        RunComponent(
            "ingest-coinbase",
            ["ingest", "coinbase", "--url", f"ws://{base}", "--rest-url", f"http://{base}"],
            "producer",
            wants_metrics_port=True,
        ),
    ]


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
