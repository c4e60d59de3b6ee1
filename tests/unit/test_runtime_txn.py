"""Which transactional-producer failures the worker recovers from in-process (tickwire.runtime.txn)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException

from tickwire.runtime import txn
from tickwire.runtime.errors import FatalRuntimeError

pytestmark = pytest.mark.unit

FATAL_TXN_STATE = KafkaError(KafkaError.INVALID_TXN_STATE, "Failed to end transaction", fatal=True)
FENCED = KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True)
TIMED_OUT = KafkaError(KafkaError._TIMED_OUT, "timed out", retriable=True)


class Producer:
    def __init__(self, *errors: KafkaError) -> None:
        self.errors = list(errors)
        self.calls = 0

    def abort_transaction(self, timeout: float) -> None:
        self.calls += 1
        if self.errors:
            raise KafkaException(self.errors.pop(0))


def test_replaceable_only_outside_commit_and_never_when_fenced() -> None:
    assert txn.replaceable(FATAL_TXN_STATE, "abort") and txn.replaceable(FATAL_TXN_STATE, "send_offsets")
    assert not txn.replaceable(FATAL_TXN_STATE, "commit")  # outcome unknown: a fresh process decides
    assert not txn.replaceable(FENCED, "abort")  # a zombie must stop
    assert not txn.replaceable(TIMED_OUT, "abort")  # not fatal: the producer is still usable


def test_abort_retries_an_outage_then_succeeds() -> None:
    p = Producer(TIMED_OUT, TIMED_OUT)
    assert txn.abort(p, 1.0, time.monotonic() + 60) is True and p.calls == 3


def test_abort_asks_for_a_new_producer_on_a_fatal_error() -> None:
    p = Producer(TIMED_OUT, FATAL_TXN_STATE)
    assert txn.abort(p, 1.0, time.monotonic() + 60) is False and p.calls == 2


def test_abort_ends_the_process_when_fenced_or_past_the_deadline() -> None:
    with pytest.raises(FatalRuntimeError, match="fenced"):
        txn.abort(Producer(FENCED), 1.0, time.monotonic() + 60)
    with pytest.raises(FatalRuntimeError, match="timed out"):
        txn.abort(Producer(TIMED_OUT, TIMED_OUT), 1.0, time.monotonic() - 1)
