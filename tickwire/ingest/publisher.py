"""Publishing received payloads: the per-stream seq, the envelope, oversized frames to the DLQ, gap records.

Every producer publishes through one ``RawPublisher`` (the WebSocket runner does; so can a producer
with another transport): a stream's seq is a counter that lives as long as the process (the session),
so a reconnect never reuses a seq; a frame too large for Kafka goes to ``<source>.raw.dlq`` (its head,
with the one DLQ header builder's reason) and keeps its seq, so the gap is explained, not silent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tickwire import __version__
from tickwire.contract.dlq import dlq_headers
from tickwire.contract.envelope import SESSION_END, Envelope, context_header
from tickwire.contract.records import Gap, GapReason
from tickwire.contract.settings import IngestSettings
from tickwire.ingest import health
from tickwire.ingest.producer import RawProducer
from tickwire.logs import kv

log = logging.getLogger(__name__)


class FrameTooLarge(ValueError):
    """A received frame exceeds ``max_frame_bytes`` (Kafka's record limit)."""


class RawPublisher:
    def __init__(
        self,
        producer: RawProducer,
        settings: IngestSettings,
        source: str,
        content_type: str,
        *,
        encode: Callable[[Any], bytes],
        session: int | None = None,
    ) -> None:
        self.producer = producer
        self.s = settings
        self.source = source
        self.content_type = content_type
        self.session = session if session is not None else time.time_ns()
        self._encode = encode
        self.raw_topic = settings.topic(f"{source}.raw")
        self.dlq_topic = settings.topic(f"{source}.raw.dlq")
        self.gaps_topic = settings.topic("tickwire.gaps")
        self._seq: dict[str, int] = {}
        self._lock = threading.Lock()

    def next_seq(self, stream: str) -> int:
        with self._lock:
            n = self._seq.get(stream, 0) + 1
            self._seq[stream] = n
            return n

    def last_seq(self, stream: str) -> int | None:
        with self._lock:
            return self._seq.get(stream)

    def seqs(self) -> dict[str, int]:
        """The last seq of every stream published so far (a copy)."""
        with self._lock:
            return dict(self._seq)

    def publish(
        self,
        frame: bytes,
        ts_recv: int,
        *,
        stream: str,
        key: str | None = None,
        content_type: str | None = None,
        extra_headers: list[tuple[str, bytes]] | None = None,
        broadcast: bool = False,
    ) -> int:
        """Publish one received payload, keyed by ``key`` (else the stream); returns its seq.

        ``broadcast``: reference data every partition's parser state needs (e.g. a symbol table): one
        copy, same seq, on every partition of the raw topic, since the normalizer keeps parser state per
        raw partition (what a symbol's partition never sees, its parser cannot use)."""
        src = self.source
        health.MESSAGES_RECEIVED.labels(src, stream).inc()
        health.BYTES_RECEIVED.labels(src, stream).inc(len(frame))
        # Before the seq is taken: a topic without metadata yet raises here, and a seq taken for a frame
        # that never reached Kafka would read downstream as a gap.
        parts = self.producer.partitions(self.raw_topic) if broadcast else 0
        seq = self.next_seq(stream)
        env = Envelope(
            src, stream, self.session, seq, ts_recv, content_type or self.content_type, __version__
        )
        headers = env.to_headers() + (extra_headers or [])
        if len(frame) > self.s.max_frame_bytes:
            exc = FrameTooLarge(
                f"frame of {len(frame)} bytes exceeds max_frame_bytes={self.s.max_frame_bytes}"
            )
            health.DLQ.labels(src, stream, "FrameTooLarge").inc()
            log.error("oversized frame to DLQ %s", kv(stream=stream, seq=seq, size=len(frame)))
            head = frame[: self.s.dlq_head_bytes]
            self.producer.produce(
                self.dlq_topic, head, stream.encode(), dlq_headers(headers, exc), stream=stream
            )
            return seq
        k = (key or stream).encode()
        if not broadcast:
            self.producer.produce(self.raw_topic, frame, k, headers, stream=stream)
            return seq
        for part in range(parts):
            self.producer.produce(self.raw_topic, frame, k, headers, stream=stream, partition=part)
        return seq

    def end_session(self, stream: str) -> int:
        """The end-of-session marker (``envelope.SESSION_END``) after a clean stop; returns its seq."""
        return self.publish(
            b"",
            time.time_ns(),
            stream=stream,
            content_type="text",
            extra_headers=[context_header({"kind": SESSION_END})],
            broadcast=True,
        )

    def gap(
        self,
        stream: str,
        last_seq_before: int | None,
        first_seq_after: int | None,
        ts_start: int,
        ts_end: int,
        detail: str,
        reason: GapReason = "reconnect",
    ) -> None:
        """One Gap record on ``tickwire.gaps``: what the producer knows it missed, and when."""
        gap = Gap(
            source=self.source,
            stream=stream,
            reason=reason,
            detected_by="producer",
            last_seq_before=last_seq_before,
            first_seq_after=first_seq_after,
            ts_start=ts_start,
            ts_end=ts_end,
            detail=detail,
        )
        try:
            self.producer.produce(self.gaps_topic, self._encode(gap), stream.encode(), [], stream="gaps")
            health.GAPS.labels(self.source, stream, reason).inc()
        except Exception:
            log.exception("gap record failed %s", kv(stream=stream))
