"""Prometheus counters of the normalizer (names read by ``tickwire run``'s live view and the bench)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Metrics:
    def __init__(self, registry: Any = None) -> None:
        """``registry``: a ``prometheus_client.CollectorRegistry`` (default: the process-wide one)."""
        from prometheus_client import REGISTRY, Counter, Gauge

        reg = REGISTRY if registry is None else registry

        p = "tickwire_normalizer_"
        self.raw_in = Counter(p + "raw_records_total", "raw records consumed", ["topic"], registry=reg)
        self.out = Counter(p + "records_out_total", "records produced", ["topic"], registry=reg)
        self.dlq = Counter(p + "dlq_total", "raw records sent to the DLQ", ["topic", "error"], registry=reg)
        self.control = Counter(
            p + "control_frames_total", "vendor control frames skipped", ["topic"], registry=reg
        )
        self.dupes = Counter(
            p + "duplicates_total", "raw records skipped as already seen", ["topic"], registry=reg
        )
        self.gaps = Counter(p + "gaps_total", "gaps published", ["topic"], registry=reg)
        self.late = Counter(
            p + "late_trades_total", "trades too late for their bar window", ["topic"], registry=reg
        )
        self.crossed = Counter(
            p + "crossed_quotes_total", "crossed quotes published, flagged", ["topic"], registry=reg
        )
        self.bars = Counter(
            p + "aggregated_bars_total", "1m bars aggregated from trades", ["topic"], registry=reg
        )
        self.rewinds = Counter(
            p + "offset_rewinds_total", "partition state resets on offset rewind", ["topic"], registry=reg
        )
        self.resync = Counter(
            p + "resync_requests_total", "symbols whose book needs a resync", ["topic"], registry=reg
        )
        self.internal = Counter(
            p + "internal_errors_total",
            "raw records DLQ'd as internal errors (our bug)",
            ["topic"],
            registry=reg,
        )
        self.infra = Counter(
            p + "infra_retries_total",
            "records retried after an infrastructure outage",
            ["topic", "error"],
            registry=reg,
        )
        self.state = Gauge(
            p + "state_entries", "entries held in normalizer state (bounded), by kind", ["kind"], registry=reg
        )
        # ``.labels()`` costs microseconds (lock, tuple, dict): bound children are kept here.
        self._children: dict[tuple[Any, ...], Any] = {}
        self._pend: dict[tuple[Any, ...], int] = {}  # (counter, *labels) -> count not yet applied

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
        """Count one raw record's result (``res`` is a pipeline ``Result``) into the pending counts.

        Plain dict adds per record; the Prometheus counters (an ``inc`` takes a lock: ~0.5 us) move in
        ``flush``, which the processor calls before each commit: the counters lag by one commit interval
        (25-50 ms) and count only the work of cycles that reached a commit, not rolled-back attempts.
        """
        pend = self._pend
        k = (self.raw_in, name)
        pend[k] = pend.get(k, 0) + 1
        for o in res.outputs:
            k = (self.out, o.topic)
            pend[k] = pend.get(k, 0) + 1
        status = res.status
        if status != "ok":
            if status == "dlq":
                self._add(self.dlq, name, res.error_class or "")
                if res.error_kind == "internal":
                    self._add(self.internal, name)
            elif status == "control":
                self._add(self.control, name)
            elif status == "duplicate":
                self._add(self.dupes, name)
        # Plain tests, not a loop over (counter, count) pairs: building those tuples for every record
        # cost ~0.2 us, a quarter of this method, for records that mostly have none of these.
        if res.gaps:
            self._add(self.gaps, name, n=res.gaps)
        if res.late_trades:
            self._add(self.late, name, n=res.late_trades)
        if res.crossed:
            self._add(self.crossed, name, n=res.crossed)
        if res.bars:
            self._add(self.bars, name, n=res.bars)
        if res.rewound:
            self._add(self.rewinds, name)
        if res.resync:
            self._add(self.resync, name, n=len(res.resync))

    def _add(self, counter: Any, *labels: str, n: int = 1) -> None:
        k = (counter, *labels)
        self._pend[k] = self._pend.get(k, 0) + n

    def flush(self) -> None:
        """Apply the pending counts to the Prometheus counters."""
        pend, self._pend = self._pend, {}
        for (counter, *labels), n in pend.items():
            self.child(counter, *labels).inc(n)

    def discard(self) -> None:
        """Drop the pending counts of a rolled-back cycle (its records are processed again)."""
        self._pend = {}
