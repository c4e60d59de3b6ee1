"""What a transform worker calls: the ``Processor`` protocol and the per-record ``Context``."""

from __future__ import annotations

from typing import NamedTuple, Protocol, TypeAlias

from confluent_kafka import Message as _Message

from tickwire.runtime.state import PartitionState

Message: TypeAlias = _Message  # confluent-kafka's own record object: wrapping each one would cost ~0.5 us
Headers = list[tuple[str, bytes]]


class TP(NamedTuple):
    """An input partition (hashable, cheap; confluent's TopicPartition carries an offset too)."""

    topic: str
    partition: int


class Emit(Protocol):
    def __call__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None: ...


class Context:
    """Handed to ``Processor.process`` with each record: its partition, its state, and ``emit``.

    One object for the worker's life (its fields are re-pointed per record), so no allocation per record.
    ``emit(topic, key, value, headers=None, partition=None)`` produces one output record now (it joins the
    open transaction under exactly-once); it is the worker's own method, not a wrapper around it (a Python
    call less per output record).
    """

    __slots__ = ("emit", "state", "tp")

    def __init__(self, emit: Emit):
        self.emit = emit
        self.tp: TP = TP("", -1)
        self.state: PartitionState = PartitionState.detached()


class Processor:
    """Base class of a transform; ``process`` is the only method that must be written."""

    def on_assign(self, tp: TP, state: PartitionState) -> None:
        """``tp`` was assigned; ``state`` is restored from its changelog. Runs before its first record."""

    def process(self, msg: Message, ctx: Context) -> None:
        raise NotImplementedError

    def before_commit(self, tps: list[TP]) -> None:
        """The cycle is about to commit: write in-memory state that is kept out of the store between
        records (e.g. a parser's state snapshot) into the ``PartitionState`` of ``tps`` now."""

    def on_reset(self, tps: list[TP], reason: str) -> None:
        """Drop in-memory caches of ``tps``: their state is back at the last commit (``reason`` abort)
        or no longer ours (``revoke``/``lost``)."""
