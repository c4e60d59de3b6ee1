"""The worker's transactional-producer calls: which failures it recovers from in-process, and bounds on
the calls librdkafka may not return from.

A fatal error of the transactional producer (librdkafka ``INVALID_TXN_STATE`` "Failed to end
transaction" after a broker dies mid-transaction, for one) makes that producer instance unusable, but
not the worker: as long as the open transaction cannot have committed (it failed before or while
aborting, never in ``commit_transaction``), a new producer with the same transactional id recovers.
Its ``init_transactions`` bumps the epoch, which aborts whatever the old instance left open, and the
worker rolls its state back and rewinds as for any abort.

A *fenced* producer is recovered the same way, a few times: losing the transaction coordinator's broker
fences a healthy producer too (the new coordinator aborts the transaction that outlived
``transaction.timeout.ms`` meanwhile and bumps the epoch). Fenced again and again is another live
process using our transactional id (two workers given one ``instance_id``): the fourth fence within
five minutes ends the process, as does a fatal error inside ``commit_transaction`` (outcome unknown: a
fresh process restores whatever it was from the committed offsets and changelogs).

``send_offsets_to_transaction`` can block past its timeout when the group coordinator's broker dies
(librdkafka #5456: coordinator requests ignore it; #5511: a dead coordinator left in the cache is not
looked up again): it runs on a helper thread, and a call that overruns its timeout by ``WEDGE_GRACE_S``
is abandoned with its producer, which is replaced like a fatally failed one.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from tickwire.logs import kv
from tickwire.runtime.errors import FatalRuntimeError

log = logging.getLogger(__name__)

_FENCED = frozenset(
    {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
)  # fmt: skip
WEDGE_GRACE_S = 5.0  # past the call's own timeout: librdkafka keeps its timeouts to well under this
MAX_WEDGED = 2  # abandoned producers still blocked in a call: one more ends the process


class Wedged(Exception):
    """A producer call overran its timeout; the producer is abandoned (never called again)."""


class FenceGuard:
    """Fences survived in-process: at most ``limit`` in ``window_s`` (see the module doc)."""

    def __init__(self, limit: int = 3, window_s: float = 300.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._at: collections.deque[float] = collections.deque()

    def allow(self) -> bool:
        now = time.monotonic()
        while self._at and now - self._at[0] > self.window_s:
            self._at.popleft()
        self._at.append(now)
        return len(self._at) <= self.limit


def fenced(err: KafkaError) -> bool:
    return err.code() in _FENCED


def replaceable(err: KafkaError, what: str, guard: FenceGuard) -> bool:
    """A fatal producer error in step ``what`` that a new producer recovers from (see the module doc)."""
    return err.fatal() and what != "commit" and (not fenced(err) or guard.allow())


def abort(producer: Any, timeout_s: float, deadline: float, guard: FenceGuard) -> bool:
    """Abort the open transaction, retrying retriable errors (a broker outage) until ``deadline``.

    True: aborted. False: the producer failed fatally and must be replaced. Raises FatalRuntimeError
    when fenced too often, on a non-retriable error, or past the deadline.
    """
    while True:
        try:
            producer.abort_transaction(timeout_s)
            return True
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if replaceable(err, "abort", guard):
                return False
            if err.fatal() or not err.retriable() or time.monotonic() > deadline:
                raise FatalRuntimeError(f"abort: {err}") from exc
            log.warning("abort retry %s", kv(error=err))


def commit(producer: Any, timeout_s: float, group: str) -> None:
    """``commit_transaction``, retried on retriable errors until ``timeout_s`` has passed: those leave
    the outcome unknown (the coordinator may have committed), and rolling back then could duplicate.
    Raises the last KafkaException (fatal, not retriable, or past the deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            producer.commit_transaction(timeout_s)
            return
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if err.fatal() or not err.retriable() or time.monotonic() > deadline:
                raise
            log.warning("commit retry %s", kv(group=group, error=err))


class Bounded:
    """Runs one producer call at a time on a helper thread and waits at most its timeout + grace."""

    def __init__(self) -> None:
        self._wedged: list[threading.Thread] = []

    def send_offsets(self, producer: Any, offsets: list[Any], group_metadata: Any, timeout_s: float) -> None:
        """``producer.send_offsets_to_transaction`` that returns or raises ``Wedged`` in bounded time."""
        result: list[BaseException] = []

        def call() -> None:
            try:
                producer.send_offsets_to_transaction(offsets, group_metadata, timeout_s)
            except BaseException as exc:  # handed to the caller's thread
                result.append(exc)

        t = threading.Thread(target=call, name="send-offsets", daemon=True)
        t.start()
        t.join(timeout_s + WEDGE_GRACE_S)
        if t.is_alive():
            self._wedged = [w for w in self._wedged if w.is_alive()] + [t]
            if len(self._wedged) > MAX_WEDGED:
                raise FatalRuntimeError(f"{len(self._wedged)} producers stuck in send_offsets_to_transaction")
            raise Wedged(f"send_offsets_to_transaction did not return within {timeout_s + WEDGE_GRACE_S:g}s")
        if result:
            raise result[0]
