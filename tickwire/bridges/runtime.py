"""The one faust agent both bridges run: batch, decode, DLQ the undecodable, write with retries, then ack.

Each bridge is its own faust app (app id = consumer group) with one agent (concurrency 1) over the
canonical topics. The agent takes batches with ``stream.noack_take(batch_max, within)``: an idle bridge
writes a lone record after at most ``within``, a busy one writes big batches. The batch's messages go to
:meth:`BridgeLoop.process`, which decodes with ``tickwire.contract.fast_decode.FastDecoder`` and hands the
records to the writer.

Delivery: the batch's events are acked only after the writer succeeded, so faust never commits an offset
past a record that is not in Redis / JetStream (faust commits the highest contiguous acked offset every
``broker_commit_interval``, at a rebalance and at shutdown). A failing write is retried inside the agent
(capped, jittered exponential backoff) for as long as it takes: nothing escapes the agent, so it never
crashes and never skips. If the process stops mid-retry, the batch is not acked and is redelivered to the
next run, where the writers' idempotence (Redis offset watermarks, JetStream ``Nats-Msg-Id``) makes the
second write a no-op for what the first had already done.

Partition assignment is faust's assignor, which co-partitions topics with equal partition counts:
partition ``i`` of every consumed topic goes to the same worker, so one symbol's trades, quotes and book
meet in one process (the Redis ticker merges them). Keep the canonical topics' partition counts equal.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import tempfile
import time
from collections.abc import Coroutine, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import faust

from tickwire.bridges import metrics as m
from tickwire.bridges.config import _BridgeSettings
from tickwire.contract.envelope import (
    H_ERROR_CLASS,
    H_ERROR_MESSAGE,
    H_SRC_OFFSET,
    H_SRC_PARTITION,
    H_SRC_TOPIC,
)
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
        """Write a batch, all or nothing from the caller's point of view; returns records written.

        Must be idempotent over redelivery of items already written."""
        ...

    async def reset(self) -> None:
        """Called after a failed write or start: drop caches that may disagree with the target."""
        ...

    async def stop(self) -> None: ...


def backoff(attempt: int, base: float, cap: float) -> float:
    """Capped exponential backoff with jitter in [half, full] of the step."""
    step: float = min(cap, base * (2 ** min(attempt, 30)))
    return step * (0.5 + random.random() / 2)


def _headers(h: Any) -> list[tuple[str, bytes]]:
    if not h:
        return []
    pairs: Iterable[tuple[Any, Any]] = h.items() if isinstance(h, dict) else h
    return [(str(k), v if isinstance(v, bytes) else str(v).encode()) for k, v in pairs if v is not None]


def dlq_headers(message: Any, exc: BaseException) -> list[tuple[str, bytes]]:
    """The record's own headers plus the reason and its source coordinates."""
    return [
        *_headers(message.headers),
        (H_ERROR_CLASS, type(exc).__name__.encode()),
        (H_ERROR_MESSAGE, str(exc)[:1000].encode("utf-8", "replace")),
        (H_SRC_TOPIC, str(message.topic).encode()),
        (H_SRC_PARTITION, str(message.partition).encode()),
        (H_SRC_OFFSET, str(message.offset).encode()),
    ]


class UnsupportedRecord(TypeError):
    """A decodable record this bridge has no legacy shape for (e.g. an Instrument on a data topic)."""


class DlqSink(Protocol):
    async def send(self, topic: str, key: bytes | None, value: bytes | None, headers: list[Any]) -> Any:
        """Queue one record; returns an awaitable resolved by the broker's ack."""
        ...


class BridgeLoop:
    """Per-process state of one bridge: decoder, writer, DLQ, metrics; :meth:`process` handles a batch."""

    def __init__(self, settings: _BridgeSettings, bridge: str, writer: Writer) -> None:
        self.s = settings
        self.bridge = bridge
        self.writer = writer
        self.decoder = FastDecoder(settings.registry_url)
        self.dlq_topic = settings.prefixed(f"bridge.{bridge}.dlq")
        self.dlq: DlqSink | None = None
        self.started = False
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

    def decode(self, messages: list[Any]) -> tuple[list[Item], list[tuple[Any, BaseException]]]:
        """faust messages (``.value`` bytes, ``.timestamp`` s) -> items, and (message, error) to DLQ."""
        items: list[Item] = []
        bad: list[tuple[Any, BaseException]] = []
        decode = self.decoder.decode
        append = items.append
        bridge = self.bridge
        for msg in messages:
            try:
                value = msg.value
                if value.__class__ is not bytes:
                    if not isinstance(value, bytes | bytearray):
                        raise TypeError(f"value is {type(value).__name__}, not bytes")
                    value = bytes(value)
                rec = decode(value)
                if rec.__class__ not in BRIDGED_TYPES:
                    raise UnsupportedRecord(f"{type(rec).__name__} has no {bridge} shape")
                append(Item(rec, msg.topic, msg.partition, msg.offset, msg.timestamp or 0.0))
            except Exception as exc:  # any undecodable record goes to the DLQ, the loop carries on
                bad.append((msg, exc))
        return items, bad

    async def _send_dlq(self, bad: list[tuple[Any, BaseException]]) -> None:
        if self.dlq is None:
            raise RuntimeError("no DLQ producer")
        futs = []
        for msg, exc in bad:
            log.warning(
                "bridge record to DLQ %s",
                kv(bridge=self.bridge, topic=msg.topic, part=msg.partition, offset=msg.offset, error=exc),
            )
            futs.append(await self.dlq.send(self.dlq_topic, msg.key, msg.value, dlq_headers(msg, exc)))
        # Wait for the broker's acks: the source offsets are committed after this batch.
        await asyncio.gather(*futs)
        self._m_dlq.inc(len(bad))

    async def process(self, messages: list[Any]) -> None:
        """Write one batch; returns only once it is written (retries forever) or raises CancelledError."""
        b = self.bridge
        self._m_in.inc(len(messages))
        self._m_batch.observe(len(messages))
        items, bad = self.decode(messages)
        oldest = min((i.timestamp for i in items if i.timestamp > 0), default=0.0)
        attempt = 0
        while True:
            try:
                if not self.started:
                    await self.writer.start()
                    self.started = True
                if bad:
                    await self._send_dlq(bad)
                    bad = []
                t0 = time.perf_counter()
                n = await self.writer.write(items) if items else 0
                self._m_publish.observe(time.perf_counter() - t0)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                m.ERRORS.labels(b, type(exc).__name__).inc()
                self._m_retrying.set(1)
                if oldest:
                    self._m_lag.set(max(0.0, time.time() - oldest))
                delay = backoff(attempt, self.s.retry_base_s, self.s.retry_max_s)
                log.warning(
                    "bridge write failed, retrying %s",
                    kv(bridge=b, attempt=attempt + 1, delay=round(delay, 2), error=self.last_error),
                )
                attempt += 1
                try:
                    await self.writer.reset()
                except Exception as reset_exc:  # reset must never break the retry loop
                    log.warning("bridge reset failed %s", kv(bridge=b, error=reset_exc))
                self.started = False
                await asyncio.sleep(delay)
        if attempt:
            log.info("bridge write recovered %s", kv(bridge=b, attempts=attempt))
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


class FaustDlq:
    """:class:`DlqSink` over the faust app's producer (faust topics with raw serializers)."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._topics: dict[str, Any] = {}

    async def send(self, topic: str, key: bytes | None, value: bytes | None, headers: list[Any]) -> Any:
        t = self._topics.get(topic)
        if t is None:
            t = self._topics[topic] = self.app.topic(topic, key_serializer="raw", value_serializer="raw")
        return await t.send(key=key, value=value, headers=headers)


class _Resume:
    """Awaitable that finishes a coroutine already stepped once (it yielded ``first`` to its Task)."""

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro, self.first = coro, first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self.coro, self.first
        while True:
            try:
                yield pending  # to the enclosing Task, exactly as the coroutine would have
            except BaseException as exc:  # cancellation etc.: into the coroutine, as a Task would
                try:
                    pending = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    pending = coro.send(None)
                except StopIteration as stop:
                    return stop.value


def _fast_transport(fast: bool = True) -> type[Any]:
    """faust's aiokafka transport with a cheaper hand-over of fetched messages to the agents.

    faust's fetcher (``Consumer._drain_messages``) hands every message over with
    ``wait_first(callback(message), suspend_flow.wait())``: four tasks and an ``asyncio.wait`` per message,
    which alone capped a bridge at ~7k records/s with a writer that did nothing. Here the callback (decode
    into an event, put it on the agent's channel queue) is stepped directly; it almost always completes
    without suspending. Only when it has to wait (channel full, flow control suspended for a rebalance) does
    the rest of it run as faust runs it, racing ``suspend_flow``. Read offsets, gap tracking for acks and
    stop checks are those of faust 0.15's loop.
    """
    from faust.transport.consumer import CONSUMER_FETCHING
    from faust.transport.drivers import aiokafka as fa

    class CommittedReadsThread(fa.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            # faust reads read_uncommitted unless the app itself is transactional; the canonical topics
            # are written in transactions, and records of aborted ones must never reach Redis or NATS.
            consumer._isolation_level = "read_committed"
            return consumer

    class BridgeConsumer(fa.Consumer):
        def _new_consumer_thread(self) -> Any:
            return CommittedReadsThread(self, loop=self.loop, beacon=self.beacon)

        def _new_offset(self, tp: Any) -> int | None:
            # The bridge acks each partition strictly in offset order (one agent; a batch is acked after
            # its write), so every offset below the highest ack was acked or holds no data record
            # (transaction markers, aborted records). faust's gap bookkeeping stalled commits on those
            # holes (measured: 125k records bridged, committed lag down by 12k), so it is bypassed.
            acked = self._acked[tp]
            if not acked:
                return None
            top = max(acked) + 1
            acked.clear()
            self._acked_index[tp].clear()
            self._gap[tp].clear()
            return int(top)

    class FastConsumer(BridgeConsumer):
        async def _drain_messages(self, fetcher: Any) -> None:
            callback, getmany = self.callback, self.getmany
            consumer_stopped, fetcher_stopped = self._stopped.is_set, fetcher._stopped.is_set
            read_offset = self._read_offset
            acks_enabled_for = self.app.topics.acks_enabled_for
            suspend_flow = self.suspend_flow
            commit_every = self._commit_every
            try:
                while not (consumer_stopped() or fetcher_stopped()):
                    self.diag.set_flag(CONSUMER_FETCHING)
                    ait = getmany(timeout=1.0)
                    await asyncio.sleep(0)
                    if self.should_stop:
                        continue
                    n = 0
                    async for tp, message in ait:
                        n += 1
                        if n % 1000 == 0:
                            await asyncio.sleep(0)  # let the agent run during a large fetch
                        offset = message.offset
                        r_offset = read_offset[tp]
                        if r_offset is not None and offset < r_offset:
                            continue  # faust drops these too (already read)
                        if r_offset and offset - r_offset > 1 and acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        if not suspend_flow.is_set():
                            coro: Any = callback(message)
                            try:
                                first = coro.send(None)
                            except StopIteration:
                                read_offset[tp] = offset
                                continue
                            await self.wait_first(_Resume(coro, first), suspend_flow.wait())
                        read_offset[tp] = offset
                    self.diag.unset_flag(CONSUMER_FETCHING)
            except self.consumer_stopped_errors:
                if self.transport.app.should_stop:
                    return
                raise
            except asyncio.CancelledError:
                if self.transport.app.should_stop:
                    return
                raise
            finally:
                self.diag.unset_flag(CONSUMER_FETCHING)

    class FastTransport(fa.Transport):
        Consumer = FastConsumer if fast else BridgeConsumer

    return FastTransport


class _App(faust.App):
    fast_fetch = True

    def _new_transport(self) -> Any:
        return _fast_transport(self.fast_fetch)(self.conf.broker_consumer, self)


class _SlowFetchApp(_App):
    fast_fetch = False


def make_app(settings: _BridgeSettings) -> faust.App:
    """The bridge's faust app: app id = consumer group, raw bytes in, settings tuned for batches."""
    s = settings
    datadir = s.data_dir or str(Path(tempfile.gettempdir()) / "tickwire-faust" / s.full_app_id)
    Path(datadir).parent.mkdir(parents=True, exist_ok=True)
    cls = _App if s.fast_fetch else _SlowFetchApp
    return cls(
        s.full_app_id,
        broker=f"kafka://{s.kafka_bootstrap_servers}",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        autodiscover=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        datadir=datadir,
        broker_commit_interval=s.commit_interval_s,
        # Fetch and buffer enough for several batches: the fetcher fills the agent's channel while the
        # writer is busy with the previous batch.
        broker_max_poll_records=s.max_poll_records,
        consumer_max_fetch_size=s.max_fetch_bytes,
        stream_buffer_maxsize=s.stream_buffer_maxsize,
        # At a rebalance do not wait for the stream buffers to drain: unacked records are redelivered
        # to the new owner and the writers are idempotent.
        stream_wait_empty=False,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        producer_acks=-1,  # DLQ records are acked by all replicas before the source offset moves
    )


def attach(app: faust.App, loop: BridgeLoop) -> None:
    """Register the bridge agent (one, concurrency 1) and the DLQ sink on ``app``."""
    s = loop.s
    source = app.topic(
        *s.full_topics, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    loop.dlq = FaustDlq(app)
    within = s.batch_within_ms / 1000.0

    async def bridge_agent(stream: Any) -> None:
        async for events in stream.noack_take(s.batch_max, within=within):
            await loop.process([ev.message for ev in events])
            # Only now: faust commits up to the highest contiguous acked offset.
            for ev in events:
                await stream.ack(ev)

    app.agent(source, name=f"bridge-{loop.bridge}", concurrency=1)(bridge_agent)


def run_worker(app: faust.App, loglevel: str) -> int:
    """Run the faust worker in this process until SIGINT/SIGTERM (acked batches are committed)."""
    # Every record allocates a few tracked objects (struct, Item, payload dicts): with the default
    # thresholds the cyclic collector ran every ~700 allocations, rescanning the long-lived heap.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    worker = faust.Worker(app, loglevel=loglevel.lower(), quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int | None) else 1
    return 0
