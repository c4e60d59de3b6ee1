"""The one Kafka producer wrapper every vendor producer and the DBN replay publish through.

Idempotent, acks=all, bounded local queue. When the local queue is full ``produce`` backs off by polling
(which serves delivery reports and frees space) and retries, forever by default so nothing received is
lost while the broker is away; a bound turns that into a counted drop. Messages already queued are never
expired (``message.timeout.ms=0`` = infinite, allowed with idempotence): librdkafka keeps retrying until
the broker returns.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from tickwire.contract.envelope import H_STREAM
from tickwire.contract.kafka_security import client_conf, explain
from tickwire.contract.settings import IngestSettings
from tickwire.ingest import health
from tickwire.logs import kv

log = logging.getLogger(__name__)

_BROKER_DOWN_CODES = {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE}

# Exit code of a producer process ended by a fatal producer error (documented in the README): the
# supervisor restarts it; the new session's start finds no clean-stop marker and emits a Gap.
EXIT_FATAL = 4


class FatalProducerError(RuntimeError):
    """librdkafka reported a fatal error (idempotent producer fenced, out-of-order sequence, ...): the
    delivery guarantee is gone and every further produce fails. Never retried: the process ends with
    ``EXIT_FATAL`` (a reconnect loop would only burn sequence numbers)."""


class RawProducer:
    """confluent-kafka Producer with back-pressure policy, per-topic delivery metrics and signal flush.

    ``max_full_retries``: how many times ``produce`` backs off on a full local queue before dropping
    (None = block until there is room; the default, because a drop is data loss).
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str,
        linger_ms: int = 5,
        compression: str = "lz4",
        queue_max_kbytes: int = 65536,
        queue_max_messages: int = 1_000_000,
        message_timeout_ms: int = 0,
        max_full_retries: int | None = None,
        backoff_s: float = 0.05,
        log_interval_s: float = 30.0,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.client_id = client_id
        self._max_full_retries = max_full_retries
        self._backoff_s = backoff_s
        self._log_interval_ns = int(log_interval_s * 1e9)
        self._last_err_log = 0
        self._err_suppressed = 0
        self._last_full_log = 0
        self.broker_up = True
        self.fatal_error: KafkaError | None = None
        conf: dict[str, Any] = client_conf(bootstrap) | {
            "client.id": client_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            "compression.type": compression,
            "queue.buffering.max.kbytes": queue_max_kbytes,
            "queue.buffering.max.messages": queue_max_messages,
            "message.timeout.ms": message_timeout_ms,
            # Java-compatible key hashing so Java clients and librdkafka agree on the partition of a symbol.
            "partitioner": "murmur2_random",
            "error_cb": self._on_error,
            "on_delivery": self._on_delivery,
        }
        conf.update(extra or {})
        self._p = Producer(conf)
        health.SCRAPE.track_producer(self)

    # -- callbacks (run inside poll/flush on the caller's thread) --

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        topic = msg.topic() or "?"
        if err is None:
            health.DELIVERED.labels(topic).inc()
            if not self.broker_up:
                self.broker_up = True
                log.info("broker reachable again %s", kv(client_id=self.client_id))
            return
        health.DELIVERY_ERRORS.labels(topic, err.name()).inc()
        self._log_limited("delivery failed %s", kv(topic=topic, error=explain(err.str())))

    def _on_error(self, err: KafkaError) -> None:
        health.BROKER_ERRORS.labels(err.name()).inc()
        if err.fatal():
            # An idempotent producer's fatal error means the guarantee is gone; the process must restart.
            self.fatal_error = err
            log.critical("fatal producer error %s", kv(client_id=self.client_id, error=explain(err.str())))
            return
        if err.code() in _BROKER_DOWN_CODES:
            self.broker_up = False
        self._log_limited(
            "kafka client error (buffering locally) %s",
            kv(
                client_id=self.client_id,
                error=explain(err.str()),
                queued=len(self._p) if hasattr(self, "_p") else 0,
            ),
        )

    def _log_limited(self, fmt: str, ctx: str) -> None:
        now = time.monotonic_ns()
        if now - self._last_err_log >= self._log_interval_ns:
            log.warning(fmt, f"{ctx} suppressed={self._err_suppressed}")
            self._last_err_log = now
            self._err_suppressed = 0
        else:
            self._err_suppressed += 1

    @classmethod
    def for_settings(cls, settings: IngestSettings, client_id: str) -> RawProducer:
        """The producer of one ingest process from its ``IngestSettings`` (the one place they map)."""
        return cls(
            settings.kafka_bootstrap_servers,
            client_id=client_id,
            linger_ms=settings.linger_ms,
            compression=settings.compression,
            queue_max_kbytes=settings.queue_max_kbytes,
            max_full_retries=settings.max_full_retries,
            # A frame up to max_frame_bytes plus its envelope headers must fit one produce request.
            extra={"message.max.bytes": max(1_000_000, settings.max_frame_bytes + 65_536)},
        )

    # -- API --

    def check_fatal(self) -> None:
        """Raise ``FatalProducerError`` once librdkafka reported a fatal error."""
        err = self.fatal_error
        if err is not None:
            raise FatalProducerError(f"fatal producer error: {err.name()}: {explain(err.str())}")

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        *,
        stream: str | None = None,
        partition: int | None = None,
    ) -> bool:
        """Enqueue one record (to ``partition``, else the key's). Returns False only when the full-queue
        bound was exceeded (counted drop)."""
        self.check_fatal()
        if stream is None:
            stream = next((v.decode() for k, v in headers if k == H_STREAM), topic)
        tries = 0
        while True:
            try:
                if partition is None:
                    self._p.produce(topic, value, key, headers=list(headers))
                else:
                    self._p.produce(topic, value, key, partition=partition, headers=list(headers))
                break
            except BufferError:
                tries += 1
                health.BUFFER_BACKOFFS.labels(topic).inc()
                if self._max_full_retries is not None and tries > self._max_full_retries:
                    health.DROPS.labels(topic, stream).inc()
                    self._log_limited("local queue full, dropping %s", kv(topic=topic, stream=stream))
                    return False
                now = time.monotonic_ns()
                if now - self._last_full_log >= self._log_interval_ns:
                    log.warning(
                        "local queue full, backing off %s",
                        kv(topic=topic, queued=len(self._p), up=self.broker_up),
                    )
                    self._last_full_log = now
                self._p.poll(self._backoff_s)
        health.MESSAGES_ENQUEUED.labels(topic, stream).inc()
        health.BYTES_ENQUEUED.labels(topic, stream).inc(len(value))
        self._p.poll(0)
        return True

    def partitions(self, topic: str, timeout: float = 10.0) -> int:
        """The topic's partition count (from the broker's metadata)."""
        md = self._p.list_topics(topic, timeout=timeout).topics[topic]
        if md.error is not None:
            raise RuntimeError(f"no metadata for {topic}: {md.error}")
        return len(md.partitions)

    def poll(self, timeout: float = 0.0) -> int:
        n: int = self._p.poll(timeout)
        return n

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many records are still queued."""
        remaining: int = self._p.flush(timeout)
        if remaining:
            log.warning("flush left records queued %s", kv(client_id=self.client_id, remaining=remaining))
        return remaining

    def queue_depth(self) -> int:
        return len(self._p)

    def close(self, timeout: float = 30.0) -> int:
        return self.flush(timeout)

    def install_signal_flush(
        self, on_signal: Callable[[], None] | None = None, timeout: float = 30.0
    ) -> None:
        """SIGTERM/SIGINT -> ``on_signal()`` (stop the read loop; the caller flushes when it returns), or
        without one, or on a second signal: flush and exit 0. Main thread only.

        Why not exit from the handler: it runs between any two bytecodes of the main thread, e.g. after a
        socket read returned and before its bytes were handled; an exit there loses what was read (a FIX
        session then stores an inbound sequence number below what it received)."""
        signalled: list[int] = []

        def handler(signum: int, _frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            signalled.append(signum)
            if on_signal is not None and len(signalled) == 1:
                log.info("signal received, stopping %s", kv(signal=name, queued=len(self._p)))
                on_signal()
                return
            log.info("signal received, flushing %s", kv(signal=name, queued=len(self._p)))
            remaining = self.flush(timeout)
            sys.exit(0 if remaining == 0 else 1)

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, handler)
            signal.signal(signal.SIGINT, handler)
