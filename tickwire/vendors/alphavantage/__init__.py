"""Alpha Vantage REST: options chains (with greeks), news sentiment and technical indicators, polled."""

from __future__ import annotations

import os

from tickwire.contract.vendor import RunComponent, RunContext, folder_spec


def run_components(ctx: RunContext) -> list[RunComponent]:
    """The simulator on a free port and the poller pointed at it; with ALPHAVANTAGE_API_KEY set, the
    poller alone against the real endpoint."""
    poller = RunComponent(
        "ingest-alphavantage", ["ingest", "alphavantage"], "producer", wants_metrics_port=True
    )
    if os.environ.get("ALPHAVANTAGE_API_KEY"):
        return [poller]
    port = ctx.free_port()
    sim = ["simulate", "alphavantage", "--port", str(port)]
    poller.argv.extend(["--url", f"http://127.0.0.1:{port}/query"])
    return [RunComponent("sim-alphavantage", sim, "simulator"), poller]


SPEC = folder_spec(
    __name__,
    __doc__,
    control_vendors=(),  # polls its configured symbols; control.subscriptions does not drive it
    # seed 004: the poller's heartbeats (tokens, suspended feeds, failures) -> legacy status keys
    status_keys=(("monitoring:alpha_vantage:metrics", "metrics"), ("heartbeat:alpha_vantage", "heartbeat")),
)
