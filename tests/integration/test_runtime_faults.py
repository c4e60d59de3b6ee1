"""tickwire.runtime with injected failures: each is rolled back and retried, nothing lost or doubled.

- a record whose outputs include one for a topic that does not exist (delivery fails after the
  metadata wait; the transaction aborts), under both guarantees;
- a processor that raises;
- a processor that stalls past ``max.poll.interval.ms``: the broker drops the member, so the commit's
  ``send_offsets_to_transaction`` is refused (a zombie's commit, KIP-447) and the partitions are lost.
The equality check is exact for exactly-once; at-least-once may repeat, so it checks nothing is missing
and that the injected failure was rolled back (the retried cycle's records appear at most twice).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.integration.runtime_support import (
    Toy,
    check_output,
    create_topics,
    expected,
    group_progress,
    produce_input,
    read_committed,
)

pytestmark = pytest.mark.integration

KEYS = 5
PARTS = 2
N = 2000


def _run(
    bootstrap: str, topic: Callable[[str], str], group: str, log: Path, **opts: object
) -> tuple[str, str, Toy]:
    inp, out = topic("rt-in"), topic("rt-out")
    create_topics(bootstrap, {inp: PARTS, out: PARTS})
    produce_input(bootstrap, inp, N, KEYS)
    return inp, out, Toy(bootstrap, inp, out, group, log, instance="0", batch=50, **opts).start()


@pytest.mark.parametrize(
    "fault",
    [{"missing_topic_at": 700}, {"raise_at": 1200}, {"stall_at": 900, "stall_s": 7.5, "max_poll_ms": 6000}],
    ids=["missing-topic", "processor-raises", "stall-past-max-poll"],
)
def test_injected_failure_is_rolled_back_exactly_once(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], unique: Callable[[str], str], tmp_path: Path,
    fault: dict[str, object],
) -> None:  # fmt: skip
    group = unique("rt")
    log = tmp_path / "toy.log"
    inp, out, toy = _run(kafka_bootstrap, unique_topic, group, log, **fault)
    check_output(kafka_bootstrap, group, inp, out, N, KEYS, PARTS)
    text = log.read_text()
    assert "rolling back" in text or "partitions lost" in text, text[-3000:]
    assert toy.kill(signal.SIGTERM) == 0


def test_at_least_once_delivery_failure_is_retried_without_loss(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], unique: Callable[[str], str], tmp_path: Path
) -> None:
    group = unique("rt")
    log = tmp_path / "toy.log"
    inp, out, toy = _run(
        kafka_bootstrap, unique_topic, group, log, guarantee="at_least_once", missing_topic_at=700
    )
    wait_for(lambda: group_progress(kafka_bootstrap, group, inp, PARTS) >= N, timeout=60)
    got = read_committed(kafka_bootstrap, out)
    want = expected(N, KEYS)
    for k, values in want.items():
        # Deduplicated in order of first appearance: exactly the expectation (state rolled back too,
        # or the counts in the values would differ).
        assert list(dict.fromkeys(got[k])) == values
    assert "rolling back" in log.read_text()
    assert toy.kill(signal.SIGTERM) == 0
