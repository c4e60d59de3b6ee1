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
from tickwire.contract.errors import InfraError, classify
from tickwire.contract.fast_decode import FastDecoder
from tickwire.contract.kafka_security import client_conf
from tickwire.contract.records import (
    AnalyticsRecord,
    Bar,
    BookUpdate,
    IndicatorPoint,
    NewsSentiment,
    OptionChain,
    Quote,
    Trade,
)
from tickwire.logs import kv

log = logging.getLogger(__name__)

Market = Trade | Quote | Bar | BookUpdate  # what every bridge takes
Bridged = Market | AnalyticsRecord
BRIDGED_TYPES = (Trade, Quote, Bar, BookUpdate)
# Analytics snapshots have Redis surfaces only (tickwire.bridges.redis_analytics): no other bridge takes them.
ANALYTICS_TYPES = (OptionChain, NewsSentiment, IndicatorPoint)


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


class PermanentWriteError(RuntimeError):
    """The target refused some records for a reason no retry cures by itself (a legacy key of the wrong
    type, out of memory, a full stream). Nothing of the attempt was applied for ``items`` (the rest of the
    batch may have been). ``keys`` name what failed (``"*"``: the target as a whole): after
    ``permanent_error_attempts`` attempts on a key its records go to the bridge DLQ with ``reason``, and
    the key's later records go there at once while it still fails (for ``poison_ttl_s``)."""

    def __init__(self, reason: str, message: str, items: list[Item], keys: tuple[str, ...]) -> None:
        super().__init__(message)
        self.reason = reason
        self.items = items
        self.keys = keys


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
        # Permanent errors: key -> (consecutive failed attempts, monotonic time of the last one).
        self._strikes: dict[str, tuple[int, float]] = {}
        self._failing_since = 0.0
        from tickwire.runtime.httpd import HEALTH

        HEALTH.readiness(f"bridge.{bridge}", self.not_ready)

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
                if rec.__class__ not in BRIDGED_TYPES and not (
                    self.bridge == "redis" and rec.__class__ in ANALYTICS_TYPES
                ):
                    raise UnsupportedRecord(f"{type(rec).__name__} has no {self.bridge} shape")
                ts = msg.timestamp()[1]
                append(Item(rec, msg.topic() or "", msg.partition() or 0, msg.offset() or 0, ts / 1000.0))
            except Exception as exc:  # any undecodable record goes to the DLQ, the batch carries on
                if classify(exc) == "infra":  # the registry is unreachable: not the record's fault
                    raise InfraError(f"decoding: {exc}") from exc
                bad.append((msg, exc))
        return items, bad

    def _send_dlq(self, bad: list[tuple[Message, BaseException]]) -> None:
        if self._dlq is None:
            conf: dict[str, Any] = client_conf(self.s.kafka_bootstrap_servers) | {
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
        oldest = 0.0
        try:
            items, bad = self.decode(messages)  # InfraError: retried like a failed write
            oldest = min((i.timestamp for i in items if i.timestamp > 0), default=0.0)
            if not self.started:
                await self.writer.start()
                self.started = True
            if bad:
                self._send_dlq(bad)
            t0 = time.perf_counter()
            n = await self._write(items, messages) if items else 0
            self._m_publish.observe(time.perf_counter() - t0)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            m.ERRORS.labels(self.bridge, type(exc).__name__).inc()
            if not self.failing:
                self._failing_since = time.time()
                m.RETRYING_SINCE.labels(self.bridge).set(self._failing_since)
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
            m.RETRYING_SINCE.labels(self.bridge).set(0)
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

    def not_ready(self) -> str | None:
        """Readiness (``/readyz``): the reason while writes fail and are being retried."""
        if not self.failing:
            return None
        return f"retrying a write for {time.time() - self._failing_since:.0f}s: {self.last_error}"

    async def _write(self, items: list[Item], messages: list[Message]) -> int:
        """Write, escalating permanent errors: after N attempts the records they name go to the DLQ and
        the rest of the batch is written (the writer applied nothing of the refused records)."""
        while True:
            try:
                return await self.writer.write(items)
            except PermanentWriteError as exc:
                m.PERMANENT.labels(self.bridge, exc.reason).inc()
                if not self._strike(exc) or not exc.items:
                    raise  # retried (with backoff) by the sink loop until the attempts are used up
                refused = {(i.topic, i.partition, i.offset) for i in exc.items}
                where = {(x.topic() or "", x.partition() or 0, x.offset() or 0): x for x in messages}
                self._send_dlq([(where[p], exc) for p in sorted(refused) if p in where])
                m.PERMANENT_DLQ.labels(self.bridge, exc.reason).inc(len(refused))
                log.error(
                    "bridge records to DLQ after a permanent write error %s",
                    kv(bridge=self.bridge, reason=exc.reason, records=len(refused), error=exc),
                )
                items = [i for i in items if (i.topic, i.partition, i.offset) not in refused]
                if not items:
                    return 0
                await self.writer.reset()  # the failed attempt's cache updates must not count

    def _strike(self, exc: PermanentWriteError) -> bool:
        """Count one failed attempt on ``exc.keys``; True when they have used up their attempts."""
        now = time.monotonic()
        ttl, limit = self.s.poison_ttl_s, self.s.permanent_error_attempts
        if len(self._strikes) > 10_000:  # bounded: forget keys that have not failed for a while
            self._strikes = {k: v for k, v in self._strikes.items() if now - v[1] < ttl}
        done = True
        for key in exc.keys:
            n, last = self._strikes.get(key, (0, now))
            n = 1 if now - last > ttl else n + 1
            self._strikes[key] = (n, now)
            done = done and n >= limit
        m.STRIKES.labels(self.bridge).set(len(self._strikes))
        return done

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
            loop_stall_s=s.loop_stall_s,
        )
