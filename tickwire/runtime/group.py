"""The consumer-group core both worker kinds share: assignment book-keeping, rewind, lag, stop.

Rebalance callbacks run inside ``consume()`` on the worker's own thread, between batches, so no record
is ever half-processed when one runs; subclasses hook ``_assigned``/``_revoking``/``_lost``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaException, TopicPartition

from tickwire.logs import kv
from tickwire.runtime.config import _Base
from tickwire.runtime.errors import FatalRuntimeError
from tickwire.runtime.metrics import WorkerMetrics
from tickwire.runtime.processor import TP

log = logging.getLogger(__name__)


class GroupMember:
    def __init__(self, cfg: _Base) -> None:
        self.cfg = cfg
        self.metrics = WorkerMetrics(cfg.group_id)
        self._stop = threading.Event()
        self.consumer: Any = None
        # Assigned partitions -> the offset to rewind to: the committed offset, else (nothing committed
        # yet) the first offset this member consumed, else None (nothing consumed: nothing to rewind).
        self.rewind_to: dict[TP, int | None] = {}
        self._next_lag = 0.0
        self.fatal: BaseException | None = None

    # -- lifecycle --

    def stop(self) -> None:
        """Ask the worker to finish its batch, commit and leave (thread- and signal-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _subscribe(self) -> None:
        self.consumer = Consumer(self.cfg.consumer_conf())
        self.consumer.subscribe(
            list(self.cfg.topics), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        log.info("subscribed %s", kv(group=self.cfg.group_id, topics=",".join(self.cfg.topics)))

    def _close_consumer(self) -> None:
        if self.consumer is None:
            return
        try:
            self.consumer.close()  # leaves the group: the partitions move at once, not at session timeout
        except (KafkaException, RuntimeError) as exc:
            log.warning("consumer close failed %s", kv(group=self.cfg.group_id, error=exc))
        self.consumer = None

    # -- rebalance callbacks (librdkafka calls these from consume()) --

    def _on_assign(self, consumer: Any, parts: list[TopicPartition]) -> None:
        if not parts:
            return
        tps = [TP(p.topic, p.partition) for p in parts]
        try:
            # Under read_committed librdkafka asks for *stable* offsets (KIP-447): this waits until a
            # previous owner's pending transaction is committed or aborted.
            committed = consumer.committed([TopicPartition(t, p) for t, p in tps], timeout=60)
        except KafkaException as exc:
            self.fatal = FatalRuntimeError(f"committed offsets of {tps}: {exc}")
            raise self.fatal from exc
        start: list[TopicPartition] = []
        for c in committed:
            tp = TP(c.topic, c.partition)
            off = c.offset if c.offset >= 0 else None
            self.rewind_to[tp] = off
            start.append(TopicPartition(c.topic, c.partition, OFFSET_INVALID if off is None else off))
        self._assigned(tps)
        consumer.incremental_assign(start)
        self.metrics.rebalance("assign")
        log.info("partitions assigned %s", kv(group=self.cfg.group_id, partitions=_fmt(tps)))

    def _on_revoke(self, consumer: Any, parts: list[TopicPartition]) -> None:
        if not parts:
            return
        tps = [TP(p.topic, p.partition) for p in parts]
        self._revoking(tps)  # lost partitions come to _on_lost instead (registered with subscribe)
        self._forget(tps)
        self.metrics.rebalance("revoke")
        log.info("partitions revoked %s", kv(group=self.cfg.group_id, partitions=_fmt(tps)))

    def _on_lost(self, consumer: Any, parts: list[TopicPartition]) -> None:
        tps = [TP(p.topic, p.partition) for p in parts]
        self._lost(tps)
        self._forget(tps)
        self.metrics.rebalance("lost")
        log.warning("partitions lost %s", kv(group=self.cfg.group_id, partitions=_fmt(tps)))

    def _forget(self, tps: list[TP]) -> None:
        for tp in tps:
            self.rewind_to.pop(tp, None)
            self.metrics.drop_lag(tp.topic, tp.partition)

    # -- hooks --

    def _assigned(self, tps: list[TP]) -> None:
        pass

    def _revoking(self, tps: list[TP]) -> None:
        pass

    def _lost(self, tps: list[TP]) -> None:
        pass

    # -- helpers --

    def _seen(self, tp: TP, offset: int) -> None:
        """First record of a partition with no committed offset: that is where a rewind goes."""
        if self.rewind_to.get(tp, 0) is None:
            self.rewind_to[tp] = offset

    def _rewind(self, targets: Mapping[TP, int | None]) -> None:
        """Seek partitions back (to their committed offsets). Fetched records past the seek point are
        discarded by librdkafka (its op version barrier), so the next consume() starts exactly there."""
        for tp, off in targets.items():
            if off is None or tp not in self.rewind_to:
                continue
            try:
                self.consumer.seek(TopicPartition(tp.topic, tp.partition, off))
            except KafkaException as exc:
                # Not fetching yet (just assigned): re-assigning at the offset is the same thing.
                log.info("seek refused, re-assigning %s", kv(tp=f"{tp.topic}[{tp.partition}]", error=exc))
                part = TopicPartition(tp.topic, tp.partition, off)
                self.consumer.incremental_unassign([TopicPartition(tp.topic, tp.partition)])
                self.consumer.incremental_assign([part])

    def _positions(self) -> list[TopicPartition]:
        """Next offsets to consume of the assigned partitions that have consumed something."""
        if not self.rewind_to:
            return []
        pos = self.consumer.position([TopicPartition(t, p) for t, p in self.rewind_to])
        return [tp for tp in pos if tp.offset >= 0]

    def _update_lag(self, now: float) -> None:
        if now < self._next_lag or self.consumer is None:
            return
        self._next_lag = now + self.cfg.lag_interval_s
        for tp in self._positions():
            try:
                _lo, hi = self.consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if hi >= 0:
                self.metrics.set_lag(tp.topic, tp.partition, max(0, hi - tp.offset))

    def _sleep(self, seconds: float) -> None:
        """Wait without missing a stop request."""
        self._stop.wait(max(0.0, seconds))

    @staticmethod
    def _now() -> float:
        return time.monotonic()


def _fmt(tps: list[TP]) -> str:
    return ",".join(f"{t}[{p}]" for t, p in tps)
