"""One bridge batch: decode, DLQ the undecodable, write, count. The handler both bridges give the sink loop.

:meth:`BridgeLoop.handle` decodes with ``tickwire.contract.fast_decode.FastDecoder`` (registry-aware: the
process's ``SCHEMA_REGISTRY_URL``), sends what cannot be bridged to ``bridge.<name>.dlq`` (headers from the
one DLQ builder, ``tickwire.contract.dlq``; delivery confirmed before the batch counts as handled) and
hands the records to the writer. A failing write raises after counting it and resetting the writer's
caches; the sink loop retries the same batch (``tickwire.bridges.consume``), and the writers'
idempotence makes a partly-done earlier attempt harmless.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import Message, Producer

from tickwire.bridges import metrics as m
from tickwire.bridges.config import _BridgeSettings
from tickwire.contract.dlq import dlq_headers
from tickwire.contract.fast_decode import FastDecoder
from tickwire.contract.records import Bar, BookUpdate, Quote, Trade
from tickwire.logs import kv

log = logging.getLogger(__name__)

Bridged = Trade | Quote | Bar | BookUpdate
BRIDGED_TYPES = (Trade, Quote, Bar, BookUpdate)


@dataclass(slots=True, frozen=True)
class Item:
    """A decoded canonical record with its Kafka coordinates."""

    record: Bridged
    topic: str
    partition: int
    offset: int
    timestamp: float  # Kafka record timestamp (append/create time), seconds since the epoch


class Writer(Protocol):
    async def start(self) -> None:
        """Connect and prepare the target; may raise (retried by the caller)."""
        ...

    async def write(self, items: list[Item]) -> int:
        """Write a batch; returns records written. Idempotent over records already written (identity)."""
        ...

    async def reset(self) -> None:
        """After a failed write or a rebalance: drop caches that may disagree with the target."""
        ...

    async def stop(self) -> None: ...


class UnsupportedRecord(TypeError):
    """A decodable record this bridge has no legacy shape for (e.g. an Instrument on a data topic)."""


class DlqError(RuntimeError):
    """DLQ records were not acknowledged by Kafka (the batch is retried)."""


class BridgeLoop:
    """Per-process state of one bridge: decoder, writer, DLQ producer, metrics."""

    def __init__(self, settings: _BridgeSettings, bridge: str, writer: Writer) -> None:
        self.s = settings
        self.bridge = bridge
        self.writer = writer
        self.decoder = FastDecoder(settings.schema_registry_url)
        self.dlq_topic = settings.prefixed(f"bridge.{bridge}.dlq")
        self._dlq: Any = None
        self._dlq_sent: set[tuple[str, int, int]] = set()  # of the batch being retried
        self.started = False
        self.failing = False
        self.batches = 0
        self.written = 0
        self.last_write_wall = 0.0
        self.last_error = ""
        # Label children resolved once: .labels() costs a lock and a dict lookup per call.
        self._m_in = m.RECORDS_IN.labels(bridge)
        self._m_out = m.RECORDS_OUT.labels(bridge)
        self._m_skipped = m.SKIPPED.labels(bridge)
        self._m_batch = m.BATCH_SIZE.labels(bridge)
        self._m_publish = m.PUBLISH_SECONDS.labels(bridge)
        self._m_lag = m.LAG_SECONDS.labels(bridge)
        self._m_lag_hist = m.LAG_HIST.labels(bridge)
        self._m_retrying = m.RETRYING.labels(bridge)
        self._m_dlq = m.DLQ.labels(bridge)

    def decode(self, messages: list[Message]) -> tuple[list[Item], list[tuple[Message, BaseException]]]:
        items: list[Item] = []
        bad: list[tuple[Message, BaseException]] = []
        decode = self.decoder.decode
        append = items.append
        for msg in messages:
            try:
                value = msg.value()
                if value is None:
                    raise TypeError("record has no value")
                rec = decode(value)
                if rec.__class__ not in BRIDGED_TYPES:
                    raise UnsupportedRecord(f"{type(rec).__name__} has no {self.bridge} shape")
                ts = msg.timestamp()[1]
                append(Item(rec, msg.topic() or "", msg.partition() or 0, msg.offset() or 0, ts / 1000.0))
            except Exception as exc:  # any undecodable record goes to the DLQ, the batch carries on
                bad.append((msg, exc))
        return items, bad

    def _send_dlq(self, bad: list[tuple[Message, BaseException]]) -> None:
        if self._dlq is None:
            conf: dict[str, Any] = {
                "bootstrap.servers": self.s.kafka_bootstrap_servers,
                "enable.idempotence": True,
                "acks": "all",  # acked by all replicas before the source offset moves
                "linger.ms": 1,
                "allow.auto.create.topics": False,
            }
            self._dlq = Producer({**conf, **self.s.kafka_client})
        sent = []
        for msg, exc in bad:
            where = (msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
            if where in self._dlq_sent:
                continue
            log.warning(
                "bridge record to DLQ %s",
                kv(bridge=self.bridge, topic=where[0], part=where[1], offset=where[2], error=exc),
            )
            headers = dlq_headers(list(msg.headers() or ()), exc, *where)
            self._dlq.produce(self.dlq_topic, value=msg.value(), key=msg.key(), headers=headers)
            sent.append(where)
        if self._dlq.flush(30) != 0:
            raise DlqError(f"{self.dlq_topic}: DLQ records not acknowledged")
        self._dlq_sent.update(sent)
        self._m_dlq.inc(len(sent))

    async def handle(self, messages: list[Message]) -> None:
        """Write one batch or raise (the sink loop retries the same records)."""
        self._m_in.inc(len(messages))
        self._m_batch.observe(len(messages))
        items, bad = self.decode(messages)
        oldest = min((i.timestamp for i in items if i.timestamp > 0), default=0.0)
        try:
            if not self.started:
                await self.writer.start()
                self.started = True
            if bad:
                self._send_dlq(bad)
            t0 = time.perf_counter()
            n = await self.writer.write(items) if items else 0
            self._m_publish.observe(time.perf_counter() - t0)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            m.ERRORS.labels(self.bridge, type(exc).__name__).inc()
            self._m_retrying.set(1)
            self.failing = True
            if oldest:
                self._m_lag.set(max(0.0, time.time() - oldest))
            log.warning("bridge write failed, retrying %s", kv(bridge=self.bridge, error=self.last_error))
            try:
                await self.writer.reset()
            except Exception as reset_exc:  # reset must never break the retry loop
                log.warning("bridge reset failed %s", kv(bridge=self.bridge, error=reset_exc))
            self.started = False
            raise
        self._dlq_sent.clear()
        if self.failing:
            log.info("bridge write recovered %s", kv(bridge=self.bridge))
            self.failing = False
            self._m_retrying.set(0)
        now = time.time()
        if oldest:
            self._m_lag.set(max(0.0, now - oldest))
            self._m_lag_hist.observe(max(0.0, now - oldest))
        self._m_out.inc(n)
        if len(items) != n:
            self._m_skipped.inc(len(items) - n)
        self.batches += 1
        self.written += n
        self.last_write_wall = now

    async def start(self) -> None:
        """Connect the writer ahead of the first batch (that batch then does not pay for it)."""
        try:
            await self.writer.start()
            self.started = True
        except Exception as exc:  # target down: the first batch's retries keep trying
            log.warning("bridge target not reachable at start %s", kv(bridge=self.bridge, error=exc))

    async def close(self) -> None:
        try:
            await self.writer.stop()
        finally:
            if self._dlq is not None:
                self._dlq.flush(10)

    def sink_config(self) -> Any:
        from tickwire.runtime.sink import SinkConfig

        s = self.s
        return SinkConfig(
            bootstrap_servers=s.kafka_bootstrap_servers,
            group_id=s.full_app_id,
            topics=tuple(s.full_topics),
            kafka_client=s.kafka_client,
            batch_max=s.batch_max,
            idle_poll_s=s.idle_poll_ms / 1000.0,
            commit_interval_s=s.commit_interval_s,
            max_fetch_bytes=s.max_fetch_bytes,
            session_timeout_ms=s.session_timeout_ms,
            retry_base_s=s.retry_base_s,
            retry_cap_s=s.retry_max_s,
        )
