"""Which transactional-producer failures the worker recovers from in-process (tickwire.runtime.txn)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from tests.helpers import wait_for
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

    commit_transaction = abort_transaction  # the same script of errors, for txn.commit


def test_replaceable_only_outside_commit() -> None:
    guard = txn.FenceGuard()
    assert txn.replaceable(FATAL_TXN_STATE, "abort", guard)
    assert txn.replaceable(FATAL_TXN_STATE, "send_offsets", guard)
    assert not txn.replaceable(FATAL_TXN_STATE, "commit", guard)  # outcome unknown: a fresh process decides
    assert not txn.replaceable(FENCED, "commit", guard)
    assert not txn.replaceable(TIMED_OUT, "abort", guard)  # not fatal: the producer is still usable


def test_fenced_is_replaceable_three_times_in_five_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A coordinator failover fences a healthy producer (a timed-out transaction's epoch bump); a
    process fenced over and over shares its transactional id with another live one and must stop."""
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    guard = txn.FenceGuard()
    assert [txn.replaceable(FENCED, "abort", guard) for _ in range(3)] == [True, True, True]
    assert not txn.replaceable(FENCED, "send_offsets", guard)
    now[0] += 301  # the window has passed: a later failover is survived again
    assert txn.replaceable(FENCED, "begin", guard)


def test_abort_retries_an_outage_then_succeeds() -> None:
    p = Producer(TIMED_OUT, TIMED_OUT)
    assert txn.abort(p, 1.0, time.monotonic() + 60, txn.FenceGuard()) is True and p.calls == 3


def test_abort_asks_for_a_new_producer_on_a_fatal_error_or_a_fence() -> None:
    p = Producer(TIMED_OUT, FATAL_TXN_STATE)
    assert txn.abort(p, 1.0, time.monotonic() + 60, txn.FenceGuard()) is False and p.calls == 2
    assert txn.abort(Producer(FENCED), 1.0, time.monotonic() + 60, txn.FenceGuard()) is False


def test_abort_ends_the_process_when_fenced_too_often_or_past_the_deadline() -> None:
    guard = txn.FenceGuard(limit=1)
    assert txn.abort(Producer(FENCED), 1.0, time.monotonic() + 60, guard) is False
    with pytest.raises(FatalRuntimeError, match="fenced"):
        txn.abort(Producer(FENCED), 1.0, time.monotonic() + 60, guard)
    with pytest.raises(FatalRuntimeError, match="timed out"):
        txn.abort(Producer(TIMED_OUT, TIMED_OUT), 1.0, time.monotonic() - 1, txn.FenceGuard())


def test_commit_retries_retriable_errors_and_raises_the_rest() -> None:
    p = Producer(TIMED_OUT, TIMED_OUT)
    txn.commit(p, 10.0, "g")
    assert p.calls == 3
    with pytest.raises(KafkaException) as info:
        txn.commit(Producer(TIMED_OUT, FATAL_TXN_STATE), 10.0, "g")
    assert info.value.args[0] is FATAL_TXN_STATE
    with pytest.raises(KafkaException):  # past the deadline, a retriable error is the outcome
        txn.commit(Producer(TIMED_OUT), 0.0, "g")


class Sender:
    """send_offsets_to_transaction that raises ``error``, or blocks until ``release`` is set (librdkafka
    #5511: a dead group coordinator kept in the cache, the call's timeout ignored)."""

    def __init__(self, error: KafkaError | None = None, block: bool = False) -> None:
        self.error = error
        self.block = block
        self.release = threading.Event()
        self.got: list[tuple[Any, Any, float]] = []

    def send_offsets_to_transaction(self, offsets: Any, metadata: Any, timeout: float) -> None:
        self.got.append((offsets, metadata, timeout))
        if self.block:
            self.release.wait(30)
        if self.error is not None:
            raise KafkaException(self.error)


def test_bounded_send_offsets_passes_arguments_and_errors_through() -> None:
    b = txn.Bounded()
    ok = Sender()
    b.send_offsets(ok, ["tp"], "meta", 2.5)
    assert ok.got == [(["tp"], "meta", 2.5)]
    with pytest.raises(KafkaException) as info:
        b.send_offsets(Sender(FATAL_TXN_STATE), [], None, 1.0)
    assert info.value.args[0] is FATAL_TXN_STATE


def test_bounded_send_offsets_abandons_a_wedged_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(txn, "WEDGE_GRACE_S", 0.05)
    b = txn.Bounded()
    stuck = [Sender(block=True) for _ in range(txn.MAX_WEDGED + 1)]
    try:
        t0 = time.monotonic()
        with pytest.raises(txn.Wedged, match=r"did not return within 0\.15s"):
            b.send_offsets(stuck[0], [], None, 0.1)
        assert 0.15 <= time.monotonic() - t0 < 5
        for s in stuck[1 : txn.MAX_WEDGED]:
            with pytest.raises(txn.Wedged):
                b.send_offsets(s, [], None, 0.1)
        # Each abandoned call keeps a producer (and its threads): past MAX_WEDGED, restart the process.
        with pytest.raises(FatalRuntimeError, match="stuck in send_offsets_to_transaction"):
            b.send_offsets(stuck[-1], [], None, 0.1)
        stuck[0].release.set()  # calls that return at last no longer count
        stuck[-1].release.set()
        wait_for(lambda: sum(t.name == "send-offsets" for t in threading.enumerate()) == 1)
        with pytest.raises(txn.Wedged):
            b.send_offsets(Sender(block=True), [], None, 0.1)
    finally:
        for s in stuck:
            s.release.set()
