"""Binance spot WebSocket (combined streams, live SUBSCRIBE) with REST exchangeInfo and depth snapshots."""

from __future__ import annotations

from tickwire.contract.vendor import RunComponent, RunContext, folder_spec, simulated_feed


def run_components(ctx: RunContext) -> list[RunComponent]:
    return simulated_feed(ctx, "binance", ws_path="/stream", rest=True)


SPEC = folder_spec(__name__, __doc__, bar_source=True)
