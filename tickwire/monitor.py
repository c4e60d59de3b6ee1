"""Observation of a running pipeline from the outside: Prometheus scrapes, topic rates, consumer lag and
end-to-end latency (canonical append time minus ts_recv). Used by the live view and the benchmarks."""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tickwire.contract.kafka_security import client_conf

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> Samples | None:
    """All samples of a /metrics endpoint by sample name, or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return out


def total(samples: Samples | None, name: str, **match: str) -> float | None:
    """Sum of a sample over the label sets that match; None when the metric is absent."""
    if not samples or name not in samples:
        return None
    vals = [v for labels, v in samples[name] if all(labels.get(k) == x for k, x in match.items())]
    return sum(vals) if vals else None


def maximum(samples: Samples | None, name: str) -> float | None:
    if not samples or name not in samples:
        return None
    return max(v for _, v in samples[name])


@dataclass
class RateTracker:
    """Turns monotonically increasing counters into per-second rates between observations."""

    last: dict[str, tuple[float, float]] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)

    def observe(self, key: str, value: float | None, now: float | None = None) -> float | None:
        if value is None:
            return self.rates.get(key)
        now = time.monotonic() if now is None else now
        prev = self.last.get(key)
        self.last[key] = (now, value)
        if prev and now > prev[0]:
            self.rates[key] = max(0.0, (value - prev[1]) / (now - prev[0]))
        return self.rates.get(key)


def topic_end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[str, int]:
    """Sum of high watermarks per topic (records ever appended, modulo retention)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(client_conf(bootstrap) | {"group.id": "tickwire-monitor", "enable.auto.commit": False})
    try:
        md = c.list_topics(timeout=5)
        out: dict[str, int] = {}
        for t in topics:
            tm = md.topics.get(t)
            if tm is None or tm.error is not None:
                continue
            n = 0
            for p in tm.partitions:
                _, hi = c.get_watermark_offsets(TopicPartition(t, p), timeout=5, cached=False)
                n += max(hi, 0)
            out[t] = n
        return out
    finally:
        c.close()


def group_lag(bootstrap: str, group: str, topics: Sequence[str]) -> int | None:
    """Total lag of a consumer group over the given topics (end offset minus committed)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(client_conf(bootstrap) | {"group.id": group, "enable.auto.commit": False})
    try:
        md = c.list_topics(timeout=5)
        tps = [
            TopicPartition(t, p)
            for t in topics
            if t in md.topics and md.topics[t].error is None
            for p in md.topics[t].partitions
        ]
        if not tps:
            return None
        return committed_lag(c, c.committed(tps, timeout=5))
    finally:
        c.close()


def committed_lag(consumer: Any, committed: Iterable[Any]) -> int:
    """End offset (as the consumer's isolation level sees it) minus committed offset, summed over the
    partitions; a partition without a commit (negative offset) counts whole."""
    lag = 0
    for tp in committed:
        _, hi = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
        lag += hi - tp.offset if tp.offset >= 0 else hi
    return lag


class LatencySampler:
    """Tails canonical topics and records (Kafka append timestamp - record ts_recv) in ms.

    The canonical producer's CreateTime stamps the record when it is produced, which on a co-located
    broker is within the append; LogAppendTime topics give the broker's own time.
    """

    def __init__(self, bootstrap: str, topics: Sequence[str], window: int = 20000) -> None:
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.samples: deque[float] = deque(maxlen=window)
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latency-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        from confluent_kafka import Consumer

        from tickwire.contract.codec import Codec

        codec = Codec(os.environ.get("SCHEMA_REGISTRY_URL") or None)
        c = Consumer(
            client_conf(self.bootstrap)
            | {
                "group.id": f"tickwire-latency-{time.time_ns()}",
                "auto.offset.reset": "latest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        c.subscribe(self.topics)
        try:
            while not self._stop.is_set():
                for m in c.consume(500, timeout=0.2):
                    if m.error() or m.value() is None:
                        continue
                    try:
                        rec = codec.decode(m.value())
                    except Exception:
                        continue
                    # Replayed records keep the vendor's historical receive time: not a latency.
                    if str(getattr(rec, "stream", "")).startswith("replay"):
                        continue
                    ts_recv = getattr(rec, "ts_recv", None)
                    _, ts_ms = m.timestamp()
                    if ts_recv and ts_ms > 0:
                        self.samples.append(ts_ms - ts_recv / 1e6)
                        self.count += 1
        finally:
            c.close()

    def percentiles(self, qs: Sequence[float] = (50, 99, 99.9)) -> dict[str, float]:
        data = sorted(self.samples)
        if not data:
            return {}
        out = {f"p{q:g}": data[min(len(data) - 1, int(len(data) * q / 100))] for q in qs}
        out["max"] = data[-1]
        return out
