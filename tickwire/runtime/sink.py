"""The runtime's sink mode (the bridges): consume a batch, hand it to an async handler, commit only after
it returned. ``SinkWorker(config, handler, on_start=, on_stop=, on_assign=).run()``, ``stop()``; the
handler gets ``confluent_kafka.Message`` lists in offset order per partition. Public confluent-kafka API.

- Reads ``read_uncommitted`` (the live path: no wait for the normalizer's transaction commits; the
  writers are idempotent by record identity, see bridges/README.md "Live path").
- Batches without waiting: the first record is awaited (``poll`` in a worker thread, so the event loop
  keeps serving the writers' connections), then whatever else is already fetched is taken at once
  (``consume(timeout=0)``) up to ``batch_max``. An idle bridge writes a lone record at once; a busy one
  writes big batches.
- Offsets of a batch are stored only after the handler returned and committed every
  ``commit_interval_s``, before partitions are revoked and at stop: an offset never passes an unwritten
  record.
- A failing handler is retried with the project's backoff (``tickwire.backoff.Backoff``), forever, on the
  same records. While it waits the partitions are paused and ``poll`` keeps the group membership alive;
  if a rebalance happens meanwhile the batch is dropped unwritten (nothing of it was committed, its
  partitions are fetched again from the committed offsets by whoever owns them now).
- Assignment ``range``: with equal partition counts, partition ``i`` of every canonical topic goes to one
  member, so a symbol's trades, quotes and book meet in one process (the Redis ticker merges them).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from pydantic import BaseModel, ConfigDict, Field

from tickwire.backoff import Backoff
from tickwire.contract.kafka_security import client_conf
from tickwire.logs import kv
from tickwire.runtime.httpd import Heartbeat

log = logging.getLogger(__name__)

Handler = Callable[[list[Message]], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]
ClientValue = str | int | float | bool


class SinkConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str
    group_id: str
    topics: tuple[str, ...]
    kafka_client: dict[str, ClientValue] = Field(default_factory=dict)
    batch_max: int = Field(5000, ge=1)
    idle_poll_s: float = Field(0.05, gt=0)
    commit_interval_s: float = Field(1.0, gt=0)
    max_fetch_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    session_timeout_ms: int = Field(10_000, ge=1000)
    isolation_level: str = "read_uncommitted"
    retry_base_s: float = Field(0.2, gt=0)
    retry_cap_s: float = Field(5.0, gt=0)
    # Liveness (/healthz) fails when the loop has not run for this long. Above the longest blocking call
    # of one iteration: the DLQ flush (30 s, bridges/batch.py); Redis ops time out after 5 s, JetStream
    # acks after ack_timeout_s (5 s), retry waits after retry_cap_s, and each retry wait stamps.
    loop_stall_s: float = Field(60.0, gt=0)

    def consumer_conf(self) -> dict[str, Any]:
        conf: dict[str, Any] = client_conf(self.bootstrap_servers) | {
            "group.id": self.group_id,
            "partition.assignment.strategy": "range",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": self.isolation_level,
            "session.timeout.ms": self.session_timeout_ms,
            "heartbeat.interval.ms": min(1000, self.session_timeout_ms // 3),
            "max.partition.fetch.bytes": self.max_fetch_bytes,
            "fetch.max.bytes": max(self.max_fetch_bytes, 52_428_800),
            "queued.max.messages.kbytes": 65536,
            "allow.auto.create.topics": False,
        }
        conf.update(self.kafka_client)
        return conf


class SinkWorker:
    def __init__(
        self,
        cfg: SinkConfig,
        handler: Handler,
        *,
        on_start: Hook | None = None,
        on_stop: Hook | None = None,
        on_assign: Hook | None = None,
    ) -> None:
        self.cfg = cfg
        self.handler = handler
        self.on_start, self.on_stop, self.on_assign = on_start, on_stop, on_assign
        self._stop = False
        self._consumer: Any = None
        self._pending: dict[tuple[str, int], int] = {}  # written, not yet committed: next offset
        self._generation = 0  # bumped by every rebalance callback
        self._reassigned = False
        self._last_commit = time.monotonic()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bridge-poll")
        # Deep liveness: stamped every loop iteration and retry wait (see httpd.Heartbeat).
        self.heartbeat = Heartbeat(cfg.group_id, cfg.loop_stall_s)

    def stop(self) -> None:
        """Finish the batch (or give up the retry), commit what was written, leave the group."""
        self._stop = True

    @property
    def stopping(self) -> bool:
        return self._stop

    def run(self) -> int:
        asyncio.run(self._main())
        return 0

    # -- rebalance callbacks: run inside poll/consume, i.e. between batches, never mid-write --

    def _on_assign(self, consumer: Any, parts: list[TopicPartition]) -> None:
        self._generation += 1
        self._reassigned = True
        log.info("partitions assigned %s", kv(group=self.cfg.group_id, n=len(parts)))

    def _on_revoke(self, consumer: Any, parts: list[TopicPartition]) -> None:
        self._generation += 1
        self._commit(sync=True)
        self._pending.clear()
        log.info("partitions revoked %s", kv(group=self.cfg.group_id, n=len(parts)))

    def _on_lost(self, consumer: Any, parts: list[TopicPartition]) -> None:
        self._generation += 1
        self._pending.clear()  # no longer ours: whoever has them now continues from the committed offsets
        log.warning("partitions lost %s", kv(group=self.cfg.group_id, n=len(parts)))

    def _commit(self, sync: bool) -> None:
        if not self._pending or self._consumer is None:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._pending.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=not sync)
            self._pending.clear()
        except KafkaException as exc:  # kept pending: retried at the next commit point
            log.warning("offset commit failed %s", kv(group=self.cfg.group_id, error=exc))
        self._last_commit = time.monotonic()

    # -- the loop --

    async def _next_batch(self, carry: list[Message]) -> list[Message]:
        c = self._consumer
        msgs: list[Message] = carry + c.consume(max(1, self.cfg.batch_max - len(carry)), timeout=0)
        if not msgs:
            first = await asyncio.get_running_loop().run_in_executor(self._pool, c.poll, self.cfg.idle_poll_s)
            if first is None:
                return []
            msgs = [first, *c.consume(self.cfg.batch_max - 1, timeout=0)]
        good = []
        for m in msgs:
            err = m.error()
            if err is None:
                good.append(m)
            else:
                log.warning("consumer error %s", kv(group=self.cfg.group_id, error=err))
        return good

    async def _write(self, batch: list[Message]) -> list[Message]:
        """Write ``batch``, retrying; returns records fetched during a retry (the next batch's start)."""
        gen = self._generation
        bo = Backoff(initial_s=self.cfg.retry_base_s, max_s=self.cfg.retry_cap_s)
        loop = asyncio.get_running_loop()
        while True:
            self.heartbeat.beat()  # a retry wait is the loop alive and retrying (readiness), not wedged
            if self._reassigned and self.on_assign is not None:
                self._reassigned = False
                await self.on_assign()
            try:
                await self.handler(batch)
                break
            except Exception as exc:  # the handler logged and counted it; same records again after a wait
                delay = bo.next_delay()
                log.debug("batch retry %s", kv(delay=round(delay, 2), error=exc))
                c = self._consumer
                c.pause(c.assignment())
                got = await loop.run_in_executor(self._pool, c.poll, delay)
                c.resume(c.assignment())
                if self._stop:
                    return []
                if self._generation != gen:
                    log.info("rebalance during retry: batch dropped unwritten %s", kv(records=len(batch)))
                    return [got] if got is not None and got.error() is None else []
        for m in batch:
            self._pending[(m.topic() or "", m.partition() or 0)] = (m.offset() or 0) + 1
        return []

    async def _main(self) -> None:
        self._consumer = Consumer(self.cfg.consumer_conf())
        self._consumer.subscribe(
            list(self.cfg.topics), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        log.info("sink subscribed %s", kv(group=self.cfg.group_id, topics=",".join(self.cfg.topics)))
        try:
            if self.on_start is not None:
                await self.on_start()
            carry: list[Message] = []
            while not self._stop:
                self.heartbeat.beat()
                batch = await self._next_batch(carry)
                carry = await self._write(batch) if batch else []
                if time.monotonic() - self._last_commit >= self.cfg.commit_interval_s:
                    self._commit(sync=False)
            self._commit(sync=True)
        finally:
            try:
                if self.on_stop is not None:
                    await self.on_stop()
            finally:
                self._consumer.close()  # leaves the group: partitions move at once
                self._pool.shutdown(wait=False)
                self.heartbeat.close()
                log.info("sink stopped %s", kv(group=self.cfg.group_id))
