"""Prometheus counters of the normalizer (names read by ``tickwire run``'s live view and the bench)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge

        p = "tickwire_normalizer_"
        self.raw_in = Counter(p + "raw_records_total", "raw records consumed", ["topic"])
        self.out = Counter(p + "records_out_total", "records produced", ["topic"])
        self.dlq = Counter(p + "dlq_total", "raw records sent to the DLQ", ["topic", "error"])
        self.control = Counter(p + "control_frames_total", "vendor control frames skipped", ["topic"])
        self.dupes = Counter(p + "duplicates_total", "raw records skipped as already seen", ["topic"])
        self.gaps = Counter(p + "gaps_total", "gaps published", ["topic"])
        self.late = Counter(p + "late_trades_total", "trades too late for their bar window", ["topic"])
        self.crossed = Counter(p + "crossed_quotes_total", "crossed quotes published, flagged", ["topic"])
        self.bars = Counter(p + "aggregated_bars_total", "1m bars aggregated from trades", ["topic"])
        self.rewinds = Counter(
            p + "offset_rewinds_total", "partition state resets on offset rewind", ["topic"]
        )
        self.resync = Counter(p + "resync_requests_total", "symbols whose book needs a resync", ["topic"])
        self.internal = Counter(
            p + "internal_errors_total", "raw records DLQ'd as internal errors (our bug)", ["topic"]
        )
        self.infra = Counter(
            p + "infra_retries_total", "records retried after an infrastructure outage", ["topic", "error"]
        )
        self.state = Gauge(
            p + "state_entries", "entries held in normalizer state (bounded), by kind", ["kind"]
        )
        # ``.labels()`` costs microseconds (lock, tuple, dict): bound children are kept here.
        self._children: dict[tuple[Any, ...], Any] = {}

    def child(self, counter: Any, *labels: str) -> Any:
        k = (id(counter), *labels)
        c = self._children.get(k)
        if c is None:
            c = self._children[k] = counter.labels(*labels)
        return c

    def infra_retry(self, name: str, exc: BaseException) -> None:
        """One record handed back to the runtime for a retry after an outage."""
        cause = exc.__cause__ or exc
        self.child(self.infra, name, type(cause).__name__).inc()

    def watch_state(self, sizes: Callable[[], dict[str, int]]) -> None:
        """Serve ``sizes()`` (kind -> entries: ``tickwire.normalize.sizes.state_sizes``) at scrape time."""

        def size_of(kind: str) -> Callable[[], float]:
            return lambda: float(sizes().get(kind, 0))

        for kind in ("parser", "bars", "symbols", "dedupe"):
            self.state.labels(kind).set_function(size_of(kind))

    def account(self, name: str, res: Any) -> None:
        """Count one raw record's result (``res`` is a pipeline ``Result``)."""
        child = self.child
        child(self.raw_in, name).inc()
        outs = res.outputs
        if len(outs) == 1:
            child(self.out, outs[0].topic).inc()
        elif outs:  # one inc per topic, not per record (an inc takes a lock: ~0.5 us)
            per: dict[str, int] = {}
            for o in outs:
                per[o.topic] = per.get(o.topic, 0) + 1
            for topic, n in per.items():
                child(self.out, topic).inc(n)
        if res.status == "dlq":
            child(self.dlq, name, res.error_class or "").inc()
            if res.error_kind == "internal":
                child(self.internal, name).inc()
        elif res.status == "control":
            child(self.control, name).inc()
        elif res.status == "duplicate":
            child(self.dupes, name).inc()
        if res.gaps:
            child(self.gaps, name).inc(res.gaps)
        if res.late_trades:
            child(self.late, name).inc(res.late_trades)
        if res.crossed:
            child(self.crossed, name).inc(res.crossed)
        if res.bars:
            child(self.bars, name).inc(res.bars)
        if res.rewound:
            child(self.rewinds, name).inc()
        if res.resync:
            child(self.resync, name).inc(len(res.resync))
