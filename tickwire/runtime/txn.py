"""Transactional-producer errors the worker recovers from in-process, and the ones it must not.

A fatal error of the transactional producer (librdkafka ``INVALID_TXN_STATE`` "Failed to end
transaction" after a broker dies mid-transaction, for one) makes that producer instance unusable, but
not the worker: as long as the open transaction cannot have committed (it failed before or while
aborting, never in ``commit_transaction``), a new producer with the same transactional id recovers.
Its ``init_transactions`` bumps the epoch, which aborts whatever the old instance left open, and the
worker rolls its state back and rewinds as for any abort. Two cases still end the process: a fenced
producer (another instance owns the transactional id now: this one is a zombie and must stop), and a
fatal error inside ``commit_transaction``, whose outcome is unknown (a fresh process restores whatever
it was from the committed offsets and changelogs).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from tickwire.logs import kv
from tickwire.runtime.errors import FatalRuntimeError

log = logging.getLogger(__name__)

_FENCED = frozenset(
    {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
)  # fmt: skip


def fenced(err: KafkaError) -> bool:
    return err.code() in _FENCED


def replaceable(err: KafkaError, what: str) -> bool:
    """A fatal producer error in step ``what`` that a new producer recovers from (see the module doc)."""
    return err.fatal() and what != "commit" and not fenced(err)


def abort(producer: Any, timeout_s: float, deadline: float) -> bool:
    """Abort the open transaction, retrying retriable errors (a broker outage) until ``deadline``.

    True: aborted. False: the producer failed fatally and must be replaced. Raises FatalRuntimeError
    when fenced, on a non-retriable error, or past the deadline.
    """
    while True:
        try:
            producer.abort_transaction(timeout_s)
            return True
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if replaceable(err, "abort"):
                return False
            if err.fatal() or not err.retriable() or time.monotonic() > deadline:
                raise FatalRuntimeError(f"abort: {err}") from exc
            log.warning("abort retry %s", kv(error=err))
