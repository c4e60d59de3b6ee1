"""``python -m tests.fuzz [--count N] [--seed S] [--chunk C]``: the fuzz job of ``make fuzz``.

Prints the counts by outcome every chunk and at the end; exit status 1 when any input escaped the
pipeline, ran over the time budget, carried a float amount or published a record violating the
canonical invariants.
"""

from __future__ import annotations

import argparse
import logging
import sys

from tests.fuzz.seeds import load_seeds
from tickwire.fuzz.engine import Fuzzer, Report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=50_000, help="print progress every this many inputs")
    ap.add_argument("--hypothesis", type=int, default=5_000, help="hypothesis frames (+ as many oracles)")
    a = ap.parse_args(argv)
    logging.disable(logging.CRITICAL)  # every DLQ'd input logs: millions of lines
    seeds = load_seeds()
    print(f"{len(seeds):,} seeds from {len({s.source for s in seeds})} parsers", flush=True)
    fz = Fuzzer(seeds, seed=a.seed)
    total = Report()
    done = 0
    while done < a.count:
        n = min(a.chunk, a.count - done)
        total.merge(fz.run(n))
        done += n
        print(f"--- {done:,} / {a.count:,}\n{total.render()}", flush=True)
    if a.hypothesis:
        from tickwire.fuzz.strategies import run_hypothesis

        total.merge(run_hypothesis(fz, a.hypothesis))
        print(f"--- with {a.hypothesis:,} hypothesis inputs\n{total.render()}", flush=True)
    return 1 if total.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
