"""FIX 4.4 liquidity-provider market data (V -> W/X/Y) over our own initiator session layer."""

from __future__ import annotations

from tickwire.contract.vendor import RunComponent, RunContext, folder_spec


def run_components(ctx: RunContext) -> list[RunComponent]:
    """One LP (QuickFIX/J) and one session. ``make run`` starts a fresh in-memory LP each time, so the
    session resets its sequence numbers at logon (141=Y) instead of continuing the stored ones."""
    port, control = ctx.free_port(), ctx.free_port()
    return [
        RunComponent(
            "sim-fix",
            ["simulate", "fix", "--port", str(port), "--control-port", str(control), "--rate", str(ctx.rate)],
            "simulator",
        ),
        RunComponent(
            "ingest-fix",
            [
                "ingest",
                "fix",
                "--url",
                f"fix://127.0.0.1:{port}",
                "--session",
                "lp-alpha",
                "--reset-on-logon",
            ],
            "producer",
            wants_metrics_port=True,
        ),
    ]


SPEC = folder_spec(__name__, __doc__, content_type="fix")
