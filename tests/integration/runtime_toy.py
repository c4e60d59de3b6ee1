"""A toy deterministic transform on tickwire.runtime, run as its own process by the runtime tests.

Input: key = b"k<n>", value = b"<i>" (a global index). For each record the worker bumps a per-key counter
held in the runtime's changelog-backed state and emits ``<key>:<i>:<count>`` to the output topic, keyed
by the input key. Any loss, duplicate or state rollback error shows in the output: the expected output
is exactly, per key, its inputs in order with counts 1, 2, 3, ...

Fault injection (each fires once per process, so the retried cycle succeeds):
``--missing-topic-at I``: record I also emits to a topic that does not exist (delivery fails);
``--raise-at I``: the processor raises at record I; ``--stall-at I --stall-s S``: sleep S seconds at
record I (past max.poll.interval / transaction timeout: the broker side times out).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from tickwire.runtime import TP, Context, Message, PartitionState, Processor, StreamConfig, StreamWorker
from tickwire.runtime.lifecycle import install_signal_handlers


class Toy(Processor):
    def __init__(self, out: str, a: argparse.Namespace) -> None:
        self.out = out
        self.a = a
        self.fired: set[str] = set()
        self.delay = a.delay_ms / 1000

    def _once(self, what: str, at: int, i: int) -> bool:
        if at >= 0 and i == at and what not in self.fired:
            self.fired.add(what)
            return True
        return False

    def process(self, msg: Message, ctx: Context) -> None:
        key = msg.key()
        i = int(msg.value())
        n = int(ctx.state.get(key) or b"0") + 1
        ctx.state.put(key, str(n).encode())
        ctx.emit(self.out, key, b"%s:%d:%d" % (key, i, n))
        if self._once("missing", self.a.missing_topic_at, i):
            ctx.emit(self.out + ".missing", key, b"x")
        if self._once("raise", self.a.raise_at, i):
            raise RuntimeError(f"injected failure at {i}")
        if self._once("stall", self.a.stall_at, i):
            time.sleep(self.a.stall_s)
        if self.delay:
            time.sleep(self.delay)

    def on_assign(self, tp: TP, state: PartitionState) -> None:
        print(f"ASSIGN {tp.topic} {tp.partition} keys={len(state)}", file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--instance", default="")
    ap.add_argument("--guarantee", default="exactly_once")
    ap.add_argument("--delay-ms", type=float, default=0.0)  # per record: keeps the stream going for kills
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--missing-topic-at", type=int, default=-1)
    ap.add_argument("--raise-at", type=int, default=-1)
    ap.add_argument("--stall-at", type=int, default=-1)
    ap.add_argument("--stall-s", type=float, default=0.0)
    ap.add_argument("--max-poll-ms", type=int, default=300_000)
    ap.add_argument("--txn-timeout-ms", type=int, default=10_000)
    ap.add_argument("--static", type=int, default=0)
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    cfg = StreamConfig(
        bootstrap_servers=a.bootstrap,
        group_id=a.group,
        topics=(a.input,),
        guarantee=a.guarantee,
        stateful=True,
        instance_id=a.instance,
        static_membership=bool(a.static),
        batch_size=a.batch,
        session_timeout_ms=6000,
        max_poll_interval_ms=a.max_poll_ms,
        transaction_timeout_ms=a.txn_timeout_ms,
        # A missing output topic fails its delivery after 2 s instead of librdkafka's 30 s default.
        kafka_client={"topic.metadata.propagation.max.ms": 2000},
    )
    worker = StreamWorker(cfg, Toy(a.output, a))
    install_signal_handlers(worker)
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
