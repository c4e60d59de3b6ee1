"""Producer health: Prometheus metrics on /metrics and a periodic Heartbeat record on ``tickwire.health``.

Metrics are module-level (one registry per process); every producer process, the DBN replay included,
shares the same names so one dashboard fits all. Gauges that depend on "now" (last message age, local
queue depth) are computed at scrape time by a collector rather than updated in the hot path.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tickwire.logs import kv
from tickwire.runtime.httpd import serve

if TYPE_CHECKING:
    from tickwire.ingest.producer import RawProducer

log = logging.getLogger(__name__)

_P = "tickwire_ingest_"

MESSAGES_RECEIVED = Counter(_P + "messages_received", "Frames received from the vendor", ["source", "stream"])
BYTES_RECEIVED = Counter(_P + "bytes_received", "Bytes received from the vendor", ["source", "stream"])
MESSAGES_ENQUEUED = Counter(
    _P + "messages_enqueued", "Records handed to the Kafka producer", ["topic", "stream"]
)
BYTES_ENQUEUED = Counter(
    _P + "bytes_enqueued", "Value bytes handed to the Kafka producer", ["topic", "stream"]
)
DELIVERED = Counter(_P + "delivered", "Delivery reports: broker acknowledged", ["topic"])
DELIVERY_ERRORS = Counter(_P + "delivery_errors", "Delivery reports: failed", ["topic", "code"])
BUFFER_BACKOFFS = Counter(_P + "buffer_backoffs", "Local queue full: produce backed off", ["topic"])
DROPS = Counter(_P + "drops", "Records dropped after the local-queue backoff bound", ["topic", "stream"])
BROKER_ERRORS = Counter(_P + "broker_errors", "librdkafka client-level errors", ["code"])
RECONNECTS = Counter(_P + "reconnects", "Vendor connection re-establishments", ["source", "stream", "reason"])
STALE_RECONNECTS = Counter(
    _P + "stale_reconnects", "Reconnects forced by the data watchdog", ["source", "stream"]
)
VENDOR_SEQ_GAPS = Counter(_P + "vendor_seq_gaps", "Vendor sequence gaps seen in frames", ["source", "stream"])
DLQ = Counter(_P + "dlq", "Frames routed to the raw DLQ", ["source", "stream", "reason"])
GAPS = Counter(_P + "gaps", "Gap records emitted", ["source", "stream", "reason"])
CONNECTED = Gauge(_P + "connected", "1 while the vendor connection is up", ["source", "stream"])
SUBSCRIBED = Gauge(_P + "subscribed_symbols", "Symbols currently subscribed", ["source", "stream", "type"])
SESSION = Gauge(
    _P + "session",
    "Session-layer numbers a link adapter reports (seq_in, seq_out, ...)",
    ["source", "stream", "field"],
)


class _ScrapeCollector(Collector):
    """Values computed at scrape time: last-message age per stream, local queue depth per producer."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], Callable[[], float | None]] = {}
        self._producers: weakref.WeakSet[RawProducer] = weakref.WeakSet()
        self._lock = threading.Lock()

    def track_last(self, source: str, stream: str, last_ns: Callable[[], float | None]) -> None:
        with self._lock:
            self._last[(source, stream)] = last_ns

    def track_producer(self, p: RawProducer) -> None:
        with self._lock:
            self._producers.add(p)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        now = time.time_ns()
        age = GaugeMetricFamily(
            _P + "last_message_age_seconds", "Seconds since the last data frame", labels=["source", "stream"]
        )
        depth = GaugeMetricFamily(
            _P + "queue_depth", "Records waiting in the local producer queue", labels=["client_id"]
        )
        degraded = GaugeMetricFamily(
            _P + "producer_degraded",
            "1 while the producer cannot deliver: broker unreachable (buffering locally) or a fatal error",
            labels=["client_id"],
        )
        with self._lock:
            last = list(self._last.items())
            producers = list(self._producers)
        for (source, stream), fn in last:
            ts = fn()
            if ts is not None:
                age.add_metric([source, stream], (now - ts) / 1e9)
        for p in producers:
            depth.add_metric([p.client_id], float(p.queue_depth()))
            degraded.add_metric([p.client_id], 0.0 if p.broker_up and p.fatal_error is None else 1.0)
        yield age
        yield depth
        yield degraded

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []


SCRAPE = _ScrapeCollector()
REGISTRY.register(SCRAPE)

_server_lock = threading.Lock()
_server_port: int | None = None


def serve_metrics(port: int, addr: str = "127.0.0.1") -> int | None:
    """Start the /metrics, /healthz, /readyz HTTP server once per process (0 = off; see
    ``tickwire.runtime.httpd``). Returns the bound port or None."""
    global _server_port
    if port < 0:
        return None
    with _server_lock:
        if _server_port is not None:
            return _server_port
        if port == 0:
            return None
        _server_port = serve(port, addr)
        return _server_port


def counter_total(counter: Counter, **labels: str) -> float:
    """Sum of a counter's samples matching ``labels`` (for heartbeat stats and tests)."""
    total = 0.0
    for metric in counter.collect():
        for s in metric.samples:
            if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


class HeartbeatEmitter:
    """Publishes an Avro ``Heartbeat`` to the health topic every ``interval`` seconds from a thread."""

    def __init__(
        self,
        producer: RawProducer,
        *,
        component: str,
        topic: str = "tickwire.health",
        interval: float = 5.0,
        stats: Callable[[], dict[str, str]] | None = None,
        status: Callable[[], str] | None = None,
        encode: Callable[[Any], bytes],
    ) -> None:
        self._producer = producer
        self._component = component
        self._instance = f"{socket.gethostname()}:{os.getpid()}"
        self._topic = topic
        self._interval = interval
        self._stats = stats or (lambda: {})
        self._status = status or (lambda: "ok")
        self._encode = encode
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        from tickwire.contract.records import Heartbeat

        encode = self._encode
        try:
            stats = {k: str(v) for k, v in self._stats().items()}
            hb = Heartbeat(
                component=self._component,
                instance=self._instance,
                ts=time.time_ns(),
                status=self._status(),
                stats=stats,
            )
            self._producer.produce(self._topic, encode(hb), self._component.encode(), [], stream="heartbeat")
        except Exception:  # a heartbeat must never take the producer down
            log.exception("heartbeat failed %s", kv(component=self._component))

    def _run(self) -> None:
        self.beat()  # at start: a monitor sees the process before the first interval elapses
        while not self._stop.wait(self._interval):
            self.beat()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)


def avro_encoder(registry_url: str | None = None) -> Callable[[Any], bytes]:
    """The shared Avro codec's encoder (imported lazily: the codec module loads schemas)."""
    from tickwire.contract.codec import Codec

    codec = Codec(registry_url)
    enc: Callable[[Any], bytes] = codec.encode
    return enc


def iter_samples(prefix: str = _P) -> Iterator[tuple[str, dict[str, str], float]]:
    for metric in REGISTRY.collect():
        for s in metric.samples:
            if s.name.startswith(prefix):
                yield s.name, dict(s.labels), s.value
