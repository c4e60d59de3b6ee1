"""tickwire.runtime against the real broker: exactly-once under SIGKILL, and both guarantees end to end.

The toy transform (tests/integration/runtime_toy.py) keeps a per-key counter in the runtime's changelog
state, so the committed output is exactly predictable: per key, its inputs in order with counts 1..n.
A lost record, a duplicate or a state that was not rolled back with an abort changes it.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.integration.runtime_support import (
    Toy,
    count_committed,
    create_topics,
    expected,
    group_progress,
    produce_input,
    read_committed,
)

pytestmark = pytest.mark.integration

# The toy runtime's kill count. The x20 is carried by the real normalizer
# (test_normalize_kafka.py, test_bridge_invariant.py), which runs this runtime; ten here keep the toy's
# own coverage of kills landing in processing, commits and restores at half the suite time.
KILLS = 10

KEYS = 7
PARTS = 3


def _setup(bootstrap: str, unique_topic: Callable[[str], str], n: int) -> tuple[str, str]:
    inp, out = unique_topic("rt-in"), unique_topic("rt-out")
    create_topics(bootstrap, {inp: PARTS, out: PARTS})
    produce_input(bootstrap, inp, n, KEYS)
    return inp, out


def _finish(toy: Toy, bootstrap: str, group: str, inp: str, out: str, n: int) -> None:
    wait_for(
        lambda: group_progress(bootstrap, group, inp, PARTS) >= n, timeout=40, what="all input committed"
    )
    wait_for(lambda: count_committed(bootstrap, out) >= n, timeout=20, what="all output committed")
    assert read_committed(bootstrap, out) == expected(n, KEYS)
    assert toy.kill(signal.SIGTERM) == 0  # graceful stop: final commit, exit 0


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_each_guarantee_publishes_exactly_the_expected_output(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], unique: Callable[[str], str], tmp_path: Path,
    guarantee: str,
) -> None:  # fmt: skip
    n = 3000
    inp, out = _setup(kafka_bootstrap, unique_topic, n)
    group = unique("rt")
    toy = Toy(kafka_bootstrap, inp, out, group, tmp_path / "toy.log", instance="0", guarantee=guarantee)
    toy.start()
    _finish(toy, kafka_bootstrap, group, inp, out, n)


def test_sigkill_ten_times_mid_stream_is_exactly_once(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], unique: Callable[[str], str], tmp_path: Path
) -> None:
    n = 8000
    inp, out = _setup(kafka_bootstrap, unique_topic, n)
    group = unique("rt")
    # Static membership + a stable transactional id: each restart takes the slot back at once and its
    # init_transactions aborts the killed process's open transaction.
    toy = Toy(
        kafka_bootstrap, inp, out, group, tmp_path / "toy.log", instance="0", static=1, delay_ms=0.4, batch=50
    )
    rng = random.Random(20)
    done = 0
    for kill in range(KILLS):
        toy.start()
        wait_for(
            lambda d=done: group_progress(kafka_bootstrap, group, inp, PARTS) > d,  # type: ignore[misc]
            timeout=30,
            what=f"progress before kill {kill}",
        )
        time.sleep(rng.uniform(0.0, 0.15))  # land in processing, in a commit, or in the next restore
        toy.kill(signal.SIGKILL)
        done = group_progress(kafka_bootstrap, group, inp, PARTS)
        assert done < n, f"the stream ended after {kill + 1} kills: not mid-stream any more"
    toy.start()
    _finish(toy, kafka_bootstrap, group, inp, out, n)
    log = (tmp_path / "toy.log").read_text()
    assert log.count("transactional producer ready") == KILLS + 1
