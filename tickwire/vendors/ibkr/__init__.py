"""Interactive Brokers TWS API: depth per exchange, tick-by-tick trades and quotes, 5 s real-time bars."""

from __future__ import annotations

from tickwire.contract.vendor import RunComponent, RunContext, folder_spec


def run_components(ctx: RunContext) -> list[RunComponent]:
    """The TWS-protocol simulator and one producer (client id 1) pointed at it."""
    port, control = ctx.free_port(), ctx.free_port()
    return [
        RunComponent(
            "sim-ibkr",
            [
                "simulate",
                "ibkr",
                "--port",
                str(port),
                "--control-port",
                str(control),
                "--rate",
                str(ctx.rate),
            ],
            "simulator",
        ),
        RunComponent(
            "ingest-ibkr",
            ["ingest", "ibkr", "--url", f"tws://127.0.0.1:{port}", "--client-id", "1"],
            "producer",
            wants_metrics_port=True,
        ),
    ]


SPEC = folder_spec(
    __name__,
    __doc__,
    content_type="tws",
    bar_rollup=True,  # 5 s vendor bars -> 1 min
    venue_books=True,  # depth per exchange -> market:{symbol}:{exchange}:book and an aggregated NBBO
    # seed 004: the producer's heartbeats -> its legacy status keys
    status_keys=(
        ("ibkr:connected", "connected"),
        ("monitoring:ibkr:metrics", "metrics"),
        ("heartbeat:ibkr_ingestion", "heartbeat"),
    ),
)
