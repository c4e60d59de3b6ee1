"""The in-process pipeline core (parse + validate + Avro encode per canonical record), no Kafka, no servers.

``python -m tickwire.bench.s_core [--events N] [--repeat R] [--profile]`` builds the bench's mixed backlog
(``data.mixed_backlog``, the input the ``normalize`` scenario's ``core`` measures), then runs the same loop
as ``s_normalize.core`` (``Pipeline.process`` per raw record, same pipeline arguments) in CPU time
(``time.process_time``: other processes on the shared cores do not inflate it), for the mixed backlog and
for each vendor's slice of it alone. The best of ``--repeat`` passes is reported; each pass uses a fresh
pipeline so dedupe and bar state never short-cut a later pass. ``--profile`` adds a cProfile top list.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import pstats
import time
from typing import Any

from tickwire.bench import data
from tickwire.normalize.pipeline import Pipeline, RawMessage, build_pipeline

VENDORS = ("alpaca", "binance", "coinbase", "databento")
_SKIP = (".dlq", "tickwire.gaps")


def _pipeline() -> Pipeline:
    from tickwire.contract.codec import Codec
    from tickwire.normalize.config import NormalizerSettings

    return build_pipeline(NormalizerSettings.load(), Codec())


def messages(events: list[data.RawEvent]) -> list[RawMessage]:
    # ts_recv as in s_normalize.core: recorded frames keep their recorded receive time, generated ones
    # (stamped with the current time) get now: the event-time window holds for both.
    seq = data.Sequencer(session=1)
    return [RawMessage(f"{e.source}.raw", 0, i, e.key, e.value, seq.headers(e)) for i, e in enumerate(events)]


def run(msgs: list[RawMessage], repeat: int) -> dict[str, Any]:
    best = float("inf")
    out = 0
    dlq = 0
    for _ in range(repeat):
        pipe = _pipeline()
        out = dlq = 0
        t0 = time.process_time()
        for m in msgs:
            r = pipe.process(m)
            if r.status == "dlq":
                dlq += 1
            out += sum(1 for o in r.outputs if not o.topic.endswith(_SKIP))
        best = min(best, time.process_time() - t0)
    return {
        "raw_records": len(msgs),
        "canonical": out,
        "dlq": dlq,
        "cpu_s": round(best, 3),
        "us_per_canonical": round(1e6 * best / max(1, out), 2),
    }


def parts(msgs: list[RawMessage], repeat: int) -> dict[str, float]:
    """µs per canonical record of the parser alone and of the encoder alone (best of ``repeat``); the rest
    of ``run``'s figure is the pipeline around them (envelope, dedupe, state, validation, routing, bars)."""
    from tickwire import vendors as registry
    from tickwire.contract.codec import Codec
    from tickwire.contract.envelope import Envelope

    envs = [Envelope.from_headers(m.headers) for m in msgs]
    parse_s = encode_s = float("inf")
    records: list[Any] = []
    for _ in range(repeat):
        states: dict[str, Any] = {}
        records = []
        t0 = time.process_time()
        for m, e in zip(msgs, envs, strict=True):
            st = states.get(e.source)
            if st is None:
                st = states[e.source] = registry.get_parser(e.source).new_state(None)
            records += registry.get_parser(e.source).parse(m.value or b"", e, st).records
        parse_s = min(parse_s, time.process_time() - t0)
        enc = Codec().encode
        t0 = time.process_time()
        for r in records:
            enc(r)
        encode_s = min(encode_s, time.process_time() - t0)
    n = max(1, len(records))
    return {"parse_us": round(1e6 * parse_s / n, 2), "encode_us": round(1e6 * encode_s / n, 2)}


def profile(msgs: list[RawMessage], top: int) -> str:
    pipe = _pipeline()
    prof = cProfile.Profile()
    prof.enable()
    for m in msgs:
        pipe.process(m)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tickwire.bench.s_core", description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000, help="vendor events in the mixed backlog")
    ap.add_argument("--repeat", type=int, default=3, help="passes per measurement; the best is reported")
    ap.add_argument("--profile", action="store_true", help="print a cProfile top list of the mixed pass")
    ap.add_argument("--json", action="store_true", help="print the numbers as JSON")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # a DLQ warning per record would swamp the table
    events = data.mixed_backlog(a.events)
    msgs = messages(events)
    res: dict[str, Any] = {"mixed": run(msgs, a.repeat) | parts(msgs, a.repeat)}
    for v in VENDORS:
        sl = [m for m in msgs if m.topic == f"{v}.raw"]
        res[v] = run(sl, a.repeat) | parts(sl, a.repeat)
    if a.json:
        print(json.dumps(res, indent=2))
    else:
        print(
            f"{'slice':<10} {'raw':>8} {'canonical':>10} {'dlq':>5} {'cpu s':>7} {'us/canonical':>13}"
            f" {'parse':>7} {'encode':>7} {'rest':>7}"
        )
        for k, r in res.items():
            rest = r["us_per_canonical"] - r["parse_us"] - r["encode_us"]
            print(
                f"{k:<10} {r['raw_records']:>8} {r['canonical']:>10} {r['dlq']:>5} {r['cpu_s']:>7.3f}"
                f" {r['us_per_canonical']:>13.2f} {r['parse_us']:>7.2f} {r['encode_us']:>7.2f} {rest:>7.2f}"
            )
    if a.profile:
        print(profile(msgs, 25))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
