"""``SinkWorker``: Kafka in, an external system out (the bridges). See the package doc.

Offsets are committed only for records whose handler call returned; a failed call seeks its partitions
back to the batch's first offsets and the same records come again after a capped, jittered backoff.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from tickwire.backoff import Backoff
from tickwire.logs import kv
from tickwire.runtime.config import SinkConfig
from tickwire.runtime.errors import FatalRuntimeError, RetryableError
from tickwire.runtime.group import GroupMember
from tickwire.runtime.processor import TP, Message

log = logging.getLogger(__name__)

Handler = Callable[[list[Message]], "Awaitable[None] | None"]
Hook = Callable[[], "Awaitable[None] | None"]


class SinkWorker(GroupMember):
    def __init__(
        self,
        cfg: SinkConfig,
        handler: Handler,
        *,
        on_start: Hook | None = None,
        on_stop: Hook | None = None,
        on_revoke: Callable[[list[TP]], None] | None = None,
    ) -> None:
        super().__init__(cfg)
        self.scfg = cfg
        self.handler = handler
        self.on_start = on_start
        self.on_stop = on_stop
        self.on_revoke_hook = on_revoke
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pending: dict[TP, int] = {}  # handled, uncommitted: next offset per partition
        self._pending_records = 0
        self._last_commit = time.monotonic()
        self._backoff = Backoff(cfg.retry_base_s, cfg.retry_cap_s)

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        res = fn(*args)
        if inspect.isawaitable(res):
            if self.loop is None:
                self.loop = asyncio.new_event_loop()
            self.loop.run_until_complete(res)

    def run(self) -> int:
        if self.on_start is not None:
            self._call(self.on_start)
        self._subscribe()
        try:
            while not self.stopping:
                self._step()
            self._commit()
        finally:
            self._close_consumer()
            try:
                if self.on_stop is not None:
                    self._call(self.on_stop)
            finally:
                if self.loop is not None:
                    self.loop.close()
        return 0

    def _step(self) -> None:
        msgs = self.consumer.consume(self.cfg.batch_size, self.cfg.poll_timeout_ms / 1000)
        if self.fatal is not None:
            raise self.fatal
        batch: list[Message] = []
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                if err.fatal():
                    raise FatalRuntimeError(f"consumer: {err}")
                log.warning("consumer error %s", kv(group=self.cfg.group_id, error=err))
                continue
            tp = TP(m.topic(), m.partition())
            if tp in self.rewind_to:  # else a revoked partition's straggler
                batch.append(m)
        now = time.monotonic()
        if batch:
            self.metrics.batch.observe(len(batch))
            self._handle(batch)
        if self.pending and (
            self._pending_records >= self.cfg.commit_max_records
            or now - self._last_commit >= self.cfg.commit_interval_ms / 1000
        ):
            self._commit()
        self._update_lag(now)

    def _handle(self, batch: list[Message]) -> None:
        try:
            self._call(self.handler, batch)
        except Exception as exc:
            if not (isinstance(exc, RetryableError) or self.scfg.retry_all_errors):
                raise
            self.metrics.abort(type(exc).__name__)
            first: dict[TP, int] = {}
            for m in batch:
                first.setdefault(TP(m.topic(), m.partition()), m.offset())
            delay = self._backoff.next_delay()
            log.warning(
                "sink write failed, retrying %s",
                kv(group=self.cfg.group_id, error=exc, attempt=self._backoff.attempt, delay_s=f"{delay:.3f}"),
            )
            self._rewind(first)  # the same records come again: nothing skipped
            self._sleep(delay)
            return
        self._backoff.reset()
        for m in batch:
            self.pending[TP(m.topic(), m.partition())] = m.offset() + 1
        self._pending_records += len(batch)
        self.metrics.records_in.inc(len(batch))

    def _commit(self, only: list[TP] | None = None) -> None:
        if not self.pending:
            return
        keys = list(self.pending) if only is None else [tp for tp in only if tp in self.pending]
        if not keys:
            return
        offsets = [TopicPartition(tp.topic, tp.partition, self.pending[tp]) for tp in keys]
        t0 = time.perf_counter()
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Written but not committed: the records come again after a restart (handlers are idempotent).
            log.warning("offset commit failed %s", kv(group=self.cfg.group_id, error=exc))
            return
        for tp in keys:
            self.rewind_to[tp] = self.pending.pop(tp)
        self._pending_records = 0 if not self.pending else self._pending_records
        self._last_commit = time.monotonic()
        self.metrics.commits.inc()
        self.metrics.commit.observe(time.perf_counter() - t0)

    def _revoking(self, tps: list[TP]) -> None:
        self._commit(tps)
        for tp in tps:
            self.pending.pop(tp, None)
        if self.on_revoke_hook is not None:
            self.on_revoke_hook(tps)

    def _lost(self, tps: list[TP]) -> None:
        for tp in tps:
            self.pending.pop(tp, None)
        if self.on_revoke_hook is not None:
            self.on_revoke_hook(tps)
