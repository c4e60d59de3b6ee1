"""Producer sessions on Kafka: a clean-stop marker, and a Gap when the previous session did not stop cleanly.

Topic ``tickwire.sessions`` (compacted; key ``{source}|{stream}``; value a ``Heartbeat`` record,
``stats`` holding ``session``, ``stream`` and ``seqs``): a producer writes ``status=running`` when its
session starts and ``status=stopped`` (with its last seq) only after a clean stop whose flush left
nothing queued. Kafka, not a local file, so it works for containers and rescheduled pods alike.

A new session reads the key's latest marker first. ``running`` means the previous session ended
without a clean stop (SIGKILL, OOM kill, a fatal producer error, a crash during a broker outage): its
local queue (up to ``queue_max_kbytes``) may be lost, and since the new session's seq starts at 1
again, the normalizer cannot see that loss by itself. So the new session publishes a
``Gap(reason="dropped", detected_by="producer")`` on ``tickwire.gaps`` naming the previous session,
with ``last_seq_before`` = the highest seq of that session found on the raw topic (its last
``TAIL`` records per partition are read; the marker's own record when none is found) and
``ts_start`` = that record's ``ts_recv``. No marker at all (the first run) or ``stopped`` emits nothing.

Best effort by design: if the topic cannot be read the producer still starts (logged).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer

from tickwire.contract.envelope import H_SEQ, H_SESSION, H_STREAM, H_TS_RECV
from tickwire.contract.kafka_security import client_conf
from tickwire.contract.records import Heartbeat
from tickwire.ingest.producer import RawProducer
from tickwire.logs import kv
from tickwire.topic_admin import ensure_topics
from tickwire.topic_read import read_to_end

log = logging.getLogger(__name__)

SESSIONS_TOPIC = "tickwire.sessions"
TAIL = 5000  # raw records read back per partition to find a crashed session's last seq


@dataclass(frozen=True, slots=True)
class Previous:
    """What the latest marker says about the previous session of one (source, stream)."""

    session: int
    status: str  # running | stopped
    ts: int
    last_seq: int | None


def marker_key(source: str, stream: str) -> bytes:
    return f"{source}|{stream}".encode()


def _consumer(bootstrap: str) -> Consumer:
    return Consumer(
        client_conf(bootstrap)
        | {
            "group.id": f"tickwire-sessions-{uuid.uuid4().hex}",  # never committed
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )


def read_previous(bootstrap: str, topic: str, key: bytes, decode: Callable[[bytes], Any]) -> Previous | None:
    c = _consumer(bootstrap)
    try:
        records = read_to_end(c, topic)
        if records is None:
            return None
        latest: Previous | None = None
        for m in records:
            if m.key() != key or m.value() is None:
                continue
            hb = decode(m.value())
            if isinstance(hb, Heartbeat) and "session" in hb.stats:
                seq = hb.stats.get("last_seq")
                latest = Previous(int(hb.stats["session"]), hb.status, hb.ts, int(seq) if seq else None)
        return latest
    finally:
        c.close()


def last_seq_on_topic(bootstrap: str, topic: str, session: int, stream: str) -> tuple[int, int] | None:
    """(highest seq, its ts_recv) of ``session``'s ``stream`` among the last TAIL records per partition."""
    c = _consumer(bootstrap)
    want_session, want_stream = str(session).encode(), stream.encode()
    best: tuple[int, int] | None = None
    try:
        records = read_to_end(c, topic, tail=TAIL)
        if records is None:
            return None
        for m in records:
            h = dict(m.headers() or ())
            if h.get(H_SESSION) != want_session or h.get(H_STREAM) != want_stream:
                continue
            seq, ts = int(h.get(H_SEQ) or 0), int(h.get(H_TS_RECV) or 0)
            if best is None or seq > best[0]:
                best = (seq, ts)
        return best
    finally:
        c.close()


class SessionMarker:
    """The clean-stop protocol of one producer session (see the module doc)."""

    def __init__(
        self,
        producer: RawProducer,
        bootstrap: str,
        *,
        topic: str,
        raw_topic: str,
        source: str,
        stream: str,
        session: int,
        encode: Callable[[Any], bytes],
        decode: Callable[[bytes], Any],
    ) -> None:
        self.producer, self.bootstrap = producer, bootstrap
        self.topic, self.raw_topic = topic, raw_topic
        self.source, self.stream, self.session = source, stream, session
        self.encode, self.decode = encode, decode
        self.key = marker_key(source, stream)
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self.enabled = True

    def start(self, gap: Callable[[int | None, int, str], None]) -> Previous | None:
        """Read the previous session's marker, report a Gap through ``gap(last_seq, ts_start, detail)``
        when it did not stop cleanly, then mark this session running. Never raises."""
        prev: Previous | None = None
        try:
            # Compacted, created here when missing (as the control topic is): a marker sent to a topic
            # that never appears would stay queued forever (message.timeout.ms=0).
            ensure_topics(self.bootstrap, {self.topic: 1}, configs={"cleanup.policy": "compact"}, timeout=15)
        except Exception as exc:
            log.warning("session markers off: no marker topic %s", kv(topic=self.topic, error=exc))
            self.enabled = False
            return None
        try:
            prev = read_previous(self.bootstrap, self.topic, self.key, self.decode)
            if prev is not None and prev.status != "stopped" and prev.session != self.session:
                found = last_seq_on_topic(self.bootstrap, self.raw_topic, prev.session, self.stream)
                last, ts = found if found is not None else (prev.last_seq, prev.ts)
                detail = (
                    f"previous_session={prev.session} ended without a clean stop: records in its local "
                    f"queue after seq {last} may be lost (new session={self.session})"
                )
                log.warning("previous producer session did not stop cleanly %s", kv(detail=detail))
                gap(last, ts, detail)
        except Exception as exc:  # best effort: never keep a producer from starting
            log.warning("session marker not read %s", kv(topic=self.topic, error=exc))
        self._mark("running", None)
        return prev

    def stop(self, last_seq: int | None) -> None:
        """After a clean stop whose flush left nothing queued: mark the session stopped (and flush)."""
        self._mark("stopped", last_seq)
        self.producer.flush(10)

    def _mark(self, status: str, last_seq: int | None) -> None:
        if not self.enabled:
            return
        stats = {"session": str(self.session), "stream": self.stream}
        if last_seq is not None:
            stats["last_seq"] = str(last_seq)
        hb = Heartbeat(
            component=f"ingest.{self.source}", instance=self.instance, ts=time.time_ns(), status=status,
            stats=stats,
        )  # fmt: skip
        try:
            self.producer.produce(self.topic, self.encode(hb), self.key, [], stream="session")
            self.producer.flush(10)
        except Exception as exc:
            log.warning("session marker not written %s", kv(topic=self.topic, status=status, error=exc))
