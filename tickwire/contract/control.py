"""Desired subscriptions on the compacted ``control.subscriptions`` topic.

Key ``"<vendor>:<stream_type>"``, value an Avro ``Subscription`` holding the FULL symbol set (never a
diff), so the latest record per key is the truth and compaction keeps exactly that. Producers read the
topic from the beginning at start (the stored sets override config defaults), then follow it live from a
thread without a consumer group (all partitions assigned, nothing committed).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tickwire.contract.codec import Codec, Subscription
from tickwire.contract.kafka_security import client_conf
from tickwire.logs import kv
from tickwire.topic_admin import ensure_topics

log = logging.getLogger(__name__)

CONTROL_TOPIC = "control.subscriptions"


def control_key(vendor: str, stream_type: str) -> str:
    return f"{vendor}:{stream_type}"


def ensure_topic(bootstrap: str, topic: str, timeout: float = 15.0) -> None:
    """Create the compacted control topic when missing (the topics tool normally has)."""
    ensure_topics(bootstrap, {topic: 1}, configs={"cleanup.policy": "compact"}, timeout=timeout)


class ControlReader:
    """Reads the control topic: ``read_to_end()`` once, then ``poll()`` for live updates."""

    def __init__(self, bootstrap: str, topic: str = CONTROL_TOPIC, codec: Codec | None = None) -> None:
        self.topic = topic
        self.codec = codec or Codec()
        ensure_topic(bootstrap, topic)
        self._c = Consumer(
            client_conf(bootstrap)
            | {
                # A unique, never-committed group: every producer sees the whole topic.
                "group.id": f"tickwire-control-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
            }
        )
        md = self._c.list_topics(topic, timeout=15)
        self._parts = sorted(md.topics[topic].partitions)
        self._c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in self._parts])
        self.current: dict[str, Subscription] = {}

    def _apply(self, key: bytes | None, value: bytes | None) -> tuple[str, Subscription | None] | None:
        if key is None:
            return None
        k = key.decode()
        if value is None:  # tombstone: the key's desired set is gone
            self.current.pop(k, None)
            return k, None
        try:
            sub = self.codec.decode(value)
        except Exception as exc:
            log.error("bad control record skipped %s", kv(key=k, error=exc))
            return None
        if not isinstance(sub, Subscription):
            return None
        self.current[k] = sub
        return k, sub

    def read_to_end(self, timeout: float = 30.0) -> dict[str, Subscription]:
        ends: dict[int, int] = {}
        for p in self._parts:
            _, high = self._c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)
            ends[p] = high
        pos = {p: 0 for p in self._parts}
        deadline = time.monotonic() + timeout
        while any(pos[p] < ends[p] for p in self._parts):
            if time.monotonic() > deadline:
                raise TimeoutError(f"control topic {self.topic} not read to its end in {timeout}s")
            msg = self._c.poll(0.5)
            if msg is None or msg.error():
                continue
            self._apply(msg.key(), msg.value())
            pos[msg.partition()] = (msg.offset() or 0) + 1
        return dict(self.current)

    def poll(self, timeout: float) -> list[tuple[str, Subscription | None]]:
        out: list[tuple[str, Subscription | None]] = []
        msg = self._c.poll(timeout)
        while msg is not None:
            if not msg.error():
                hit = self._apply(msg.key(), msg.value())
                if hit is not None:
                    out.append(hit)
            msg = self._c.poll(0)
        return out

    def close(self) -> None:
        self._c.close()


class ControlFollower:
    """Thread applying live control-topic changes for one vendor to ``on_change(stream_type, symbols)``."""

    def __init__(
        self,
        reader: ControlReader,
        vendor: str,
        on_change: Callable[[str, frozenset[str]], None],
    ) -> None:
        self._reader = reader
        self._prefix = f"{vendor}:"
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                changes = self._reader.poll(0.5)
            except Exception:
                log.exception("control poll failed")
                self._stop.wait(1.0)
                continue
            for key, sub in changes:
                if not key.startswith(self._prefix):
                    continue
                stream_type = key[len(self._prefix) :]
                symbols = frozenset(sub.symbols) if sub is not None else frozenset()
                log.info("control change %s", kv(key=key, symbols=",".join(sorted(symbols))))
                self._on_change(stream_type, symbols)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=3)
        self._reader.close()


def stored_subs(current: dict[str, Subscription], vendor: str) -> dict[str, frozenset[str]]:
    """The stored sets of ``vendor`` by stream type (these override config defaults)."""
    prefix = f"{vendor}:"
    return {k[len(prefix) :]: frozenset(s.symbols) for k, s in current.items() if k.startswith(prefix)}
