"""The one faust loop both bridges run: batch, decode, DLQ the undecodable, write with retries, then ack.

Delivery: the agent uses ``stream.noack_take`` and acks a batch's events only after the writer succeeded,
so faust never commits an offset past a record that is not in Redis / JetStream. A failing write is
retried inside the loop (capped, jittered exponential backoff) for as long as it takes: nothing escapes
the agent, so it never crashes and never skips. If the process stops mid-retry, the batch is simply not
acked and is redelivered to the next run, where the writers' idempotence (Redis offset watermarks,
JetStream ``Nats-Msg-Id``) makes the second write a no-op for what the first had already done.
"""

from __future__ import annotations

import asyncio
import logging
import random
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import faust

from normalize.records import Bar, BookUpdate, Quote, Trade
from tickwire.bridges import metrics as m
from tickwire.bridges.config import _BridgeSettings
from tickwire.envelope import H_ERROR_CLASS, H_ERROR_MESSAGE, H_SRC_OFFSET, H_SRC_PARTITION, H_SRC_TOPIC
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


def make_app(settings: _BridgeSettings) -> faust.App:
    datadir = settings.data_dir or str(Path(tempfile.gettempdir()) / "tickwire-faust" / settings.full_app_id)
    Path(datadir).parent.mkdir(parents=True, exist_ok=True)
    return faust.App(
        settings.full_app_id,
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        datadir=datadir,
    )


class BridgeLoop:
    """Per-process state of one bridge agent: codec, writer, DLQ topic, metrics."""

    def __init__(self, app: faust.App, settings: _BridgeSettings, bridge: str, writer: Writer) -> None:
        from normalize.avro import Codec

        self.app = app
        self.s = settings
        self.bridge = bridge
        self.writer = writer
        self.codec = Codec(settings.registry_url)
        self.source = app.topic(
            *settings.full_topics,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )
        self.dlq = app.topic(
            settings.prefixed(f"bridge.{bridge}.dlq"), key_serializer="raw", value_serializer="raw"
        )
        self.started = False
        self.batches = 0
        self.written = 0
        self.last_write_wall = 0.0
        self.last_error = ""

    def register(self) -> None:
        self.app.agent(self.source, name=f"bridge-{self.bridge}", concurrency=1)(self._agent)

    async def _agent(self, stream: Any) -> None:
        within = self.s.batch_within_ms / 1000.0
        async for events in stream.noack_take(self.s.batch_max, within=within):
            await self.process(events)
            for ev in events:
                await stream.ack(ev)

    def decode(self, events: list[Any]) -> tuple[list[Item], list[tuple[Any, BaseException]]]:
        items: list[Item] = []
        bad: list[tuple[Any, BaseException]] = []
        for ev in events:
            msg = ev.message
            try:
                if not isinstance(msg.value, bytes | bytearray):
                    raise TypeError(f"value is {type(msg.value).__name__}, not bytes")
                rec = self.codec.decode(bytes(msg.value))
                if not isinstance(rec, BRIDGED_TYPES):
                    raise UnsupportedRecord(f"{type(rec).__name__} has no {self.bridge} shape")
                items.append(Item(rec, msg.topic, msg.partition, msg.offset, float(msg.timestamp or 0.0)))
            except Exception as exc:  # any undecodable record goes to the DLQ, the agent carries on
                bad.append((msg, exc))
        return items, bad

    async def _send_dlq(self, bad: list[tuple[Any, BaseException]]) -> None:
        futs = []
        for msg, exc in bad:
            log.warning(
                "bridge record to DLQ %s",
                kv(bridge=self.bridge, topic=msg.topic, part=msg.partition, offset=msg.offset, error=exc),
            )
            futs.append(await self.dlq.send(key=msg.key, value=msg.value, headers=dlq_headers(msg, exc)))
        # Wait for the broker's acks: the source offsets are committed after this batch.
        await asyncio.gather(*futs)
        m.DLQ.labels(self.bridge).inc(len(bad))

    async def process(self, events: list[Any]) -> None:
        """Write one batch; returns only once it is written (retries forever) or raises CancelledError."""
        b = self.bridge
        m.RECORDS_IN.labels(b).inc(len(events))
        m.BATCH_SIZE.labels(b).observe(len(events))
        items, bad = self.decode(events)
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
                m.PUBLISH_SECONDS.labels(b).observe(time.perf_counter() - t0)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                m.ERRORS.labels(b, type(exc).__name__).inc()
                m.RETRYING.labels(b).set(1)
                if oldest:
                    m.LAG_SECONDS.labels(b).set(max(0.0, time.time() - oldest))
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
        m.RETRYING.labels(b).set(0)
        now = time.time()
        if oldest:
            m.LAG_SECONDS.labels(b).set(max(0.0, now - oldest))
            m.LAG_HIST.labels(b).observe(max(0.0, now - oldest))
        m.RECORDS_OUT.labels(b).inc(n)
        m.SKIPPED.labels(b).inc(len(items) - n)
        self.batches += 1
        self.written += n
        self.last_write_wall = now


def run_worker(app: faust.App, loglevel: str, on_start: Callable[[], None] | None = None) -> int:
    """Run the faust worker in this process until SIGINT/SIGTERM."""
    if on_start:
        on_start()
    worker = faust.Worker(app, loglevel=loglevel.lower(), quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int | None) else 1
    return 0
