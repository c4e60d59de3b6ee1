"""Coinbase Exchange WebSocket feed (heartbeat, ticker, matches, level2) with REST products."""

from __future__ import annotations

from tickwire.contract.vendor import RunComponent, RunContext, folder_spec, simulated_feed


def run_components(ctx: RunContext) -> list[RunComponent]:
    return simulated_feed(ctx, "coinbase", ws_path="", rest=True)


SPEC = folder_spec(__name__, __doc__, bar_source=True)
