"""A bounded sample of the fuzz job (``make fuzz`` runs 1,000,000): 20,000 structure-aware mutations of
every registered parser's contract inputs through ``parser.parse`` and ``Pipeline.process``, plus
hypothesis-generated frames and oracle checks. Fails on any escaped exception, input over the time
budget, float amount or published record violating the canonical invariants."""

from __future__ import annotations

import logging

import pytest

from tests.fuzz.seeds import load_seeds
from tickwire.fuzz.engine import Fuzzer
from tickwire.fuzz.strategies import run_hypothesis

pytestmark = pytest.mark.unit

SAMPLE = 20_000
HYPOTHESIS = 200


def test_fuzz_sample_has_no_findings() -> None:
    seeds = load_seeds()
    sources = {s.source for s in seeds}
    assert {"binance", "coinbase", "databento", "alpaca", "polygon", "fix"} <= sources
    fz = Fuzzer(seeds, seed=20_000)
    logging.disable(logging.CRITICAL)  # 20,000 DLQ warnings
    try:
        rep = fz.run(SAMPLE)
        rep.merge(run_hypothesis(fz, HYPOTHESIS))
    finally:
        logging.disable(logging.NOTSET)
        fz.gc_clock.close()
    assert rep.failures() == 0, rep.render()
    assert set(rep.by_source) >= sources  # every parser was fuzzed
    assert rep.pipeline["ok"] > 0 and sum(v for k, v in rep.pipeline.items() if k.startswith("dlq:")) > 0
