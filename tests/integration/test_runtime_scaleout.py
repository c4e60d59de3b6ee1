"""tickwire.runtime with two workers in one group: a SIGKILLed worker's partitions move to the
survivor; a second worker joins and leaves, four times.

Exactly-once must survive partitions moving between workers: the committed output equals the toy's
offline expectation (per key: inputs in order, counts 1..n, nothing lost, nothing twice).
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.integration.runtime_support import (
    Toy,
    check_output,
    create_topics,
    group_progress,
    produce_input,
)

pytestmark = pytest.mark.integration

KEYS = 7
PARTS = 4
# Join/leave rounds of the toy. The x10 rebalance test is the real normalizer's
# (test_normalize_scaleout.py), on this same runtime; four rounds here keep the toy's own check.
ROUNDS = 4


def _assigned(log: Path) -> set[int]:
    text = log.read_text() if log.exists() else ""
    return {int(p) for p in re.findall(r"^ASSIGN \S+ (\d+) ", text, flags=re.M)}


def test_killed_workers_partitions_move_to_the_survivor_exactly_once(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], unique: Callable[[str], str], tmp_path: Path
) -> None:
    n = 12_000
    inp, out = unique_topic("rt-in"), unique_topic("rt-out")
    create_topics(kafka_bootstrap, {inp: PARTS, out: PARTS})
    produce_input(kafka_bootstrap, inp, n, KEYS)
    group = unique("rt")
    la, lb = tmp_path / "a.log", tmp_path / "b.log"
    # A short transaction timeout: the killed worker's open transaction is aborted by the coordinator
    # (its transactional id never comes back), which releases the survivor's stable-offset fetch.
    opts = {"delay_ms": 1.0, "batch": 50, "txn_timeout_ms": 4000}
    a = Toy(kafka_bootstrap, inp, out, group, la, instance="a", **opts).start()
    b = Toy(kafka_bootstrap, inp, out, group, lb, instance="b", **opts).start()
    wait_for(lambda: _assigned(la) and _assigned(lb), timeout=30, what="both workers assigned")
    start = group_progress(kafka_bootstrap, group, inp, PARTS)
    wait_for(lambda: group_progress(kafka_bootstrap, group, inp, PARTS) > start + 500, timeout=30)
    a.kill(signal.SIGKILL)
    assert group_progress(kafka_bootstrap, group, inp, PARTS) < n - 2000, "not mid-stream"
    check_output(kafka_bootstrap, group, inp, out, n, KEYS, PARTS)
    assert _assigned(lb) == set(range(PARTS))  # the survivor ended up with every partition
    assert b.kill(signal.SIGTERM) == 0


def test_second_worker_joins_and_leaves_mid_stream(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], unique: Callable[[str], str], tmp_path: Path
) -> None:
    n = 24_000
    inp, out = unique_topic("rt-in"), unique_topic("rt-out")
    create_topics(kafka_bootstrap, {inp: PARTS, out: PARTS})
    produce_input(kafka_bootstrap, inp, n, KEYS)
    group = unique("rt")
    opts = {"delay_ms": 1.0, "batch": 50}
    a = Toy(kafka_bootstrap, inp, out, group, tmp_path / "a.log", instance="a", **opts).start()
    wait_for(lambda: group_progress(kafka_bootstrap, group, inp, PARTS) > 0, timeout=30)
    for i in range(ROUNDS):
        lb = tmp_path / f"b{i}.log"
        b = Toy(kafka_bootstrap, inp, out, group, lb, instance="b", **opts).start()
        wait_for(lambda lb=lb: _assigned(lb), timeout=30, what=f"join {i}")  # type: ignore[misc]
        before = group_progress(kafka_bootstrap, group, inp, PARTS)
        wait_for(lambda b0=before: group_progress(kafka_bootstrap, group, inp, PARTS) > b0, timeout=30)
        assert b.kill(signal.SIGTERM) == 0  # leaves: commits on revoke, its partitions go back to a
        assert group_progress(kafka_bootstrap, group, inp, PARTS) < n, f"stream ended at round {i}"
    check_output(kafka_bootstrap, group, inp, out, n, KEYS, PARTS)
    assert a.kill(signal.SIGTERM) == 0
