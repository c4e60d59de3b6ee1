"""Databento DBN files (trades, MBP-1/10, OHLCV, definitions, ...) replayed to Kafka at a chosen speed."""

from __future__ import annotations

from tickwire.contract.vendor import RunComponent, RunContext, folder_spec
from tickwire.resources import dbn_dir

# The sample schemas ``tickwire run`` replays (trades, a book and bars); the others are tested, not shown.
_RUN_SCHEMAS = ("trades", "mbp-10", "ohlcv-1m")


def run_components(ctx: RunContext) -> list[RunComponent]:
    files = sorted(str(f) for f in dbn_dir().glob("*.dbn*") if any(s in f.name for s in _RUN_SCHEMAS))
    if not (ctx.with_replay and files):
        return []
    argv = ["replay", "dbn", *files, "--speed", "0", "--no-progress"]
    return [RunComponent("replay-databento", argv, "producer", one_shot=True)]


SPEC = folder_spec(
    __name__,
    __doc__,
    ingest=False,
    simulator=False,
    replay="dbn",
    bar_source=True,
    seq_gap=True,
    content_type="dbn",
)
