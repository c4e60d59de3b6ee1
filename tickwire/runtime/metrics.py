"""Prometheus metrics of runtime workers (default registry; created once per process, labelled by group)."""

from __future__ import annotations

import contextlib
import functools
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

_P = "tickwire_runtime_"


class _Families:
    def __init__(self) -> None:
        self.lag = Gauge(_P + "lag", "records behind the partition end", ["group", "topic", "partition"])
        self.batch = Histogram(
            _P + "batch_size",
            "records per consume() batch",
            ["group"],
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
        )
        self.commit = Histogram(
            _P + "commit_seconds",
            "time to commit (flush + offsets + transaction commit)",
            ["group"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5),
        )
        self.rebalances = Counter(_P + "rebalances_total", "partition assignment changes", ["group", "kind"])
        self.aborts = Counter(_P + "aborts_total", "rolled-back cycles (abort + rewind)", ["group", "reason"])
        self.records_in = Counter(_P + "records_in_total", "input records processed", ["group"])
        self.records_out = Counter(_P + "records_out_total", "output records produced", ["group"])
        self.commits = Counter(_P + "commits_total", "successful commits", ["group"])
        self.producer_replacements = Counter(
            _P + "producer_replacements_total",
            "transactional producers replaced after a fatal error (tickwire.runtime.txn)",
            ["group"],
        )


@functools.cache
def _families() -> _Families:
    return _Families()


class WorkerMetrics:
    """Bound children of one worker (``.labels()`` costs microseconds; bound once here)."""

    def __init__(self, group: str) -> None:
        f = _families()
        self._f = f
        self.group = group
        self.batch = f.batch.labels(group)
        self.commit = f.commit.labels(group)
        self.records_in = f.records_in.labels(group)
        self.records_out = f.records_out.labels(group)
        self.commits = f.commits.labels(group)
        self.producer_replacements = f.producer_replacements.labels(group)
        self._lag: dict[tuple[str, int], Any] = {}

    def rebalance(self, kind: str) -> None:
        self._f.rebalances.labels(self.group, kind).inc()

    def abort(self, reason: str) -> None:
        self._f.aborts.labels(self.group, reason).inc()

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        g = self._lag.get((topic, partition))
        if g is None:
            g = self._lag[(topic, partition)] = self._f.lag.labels(self.group, topic, str(partition))
        g.set(lag)

    def drop_lag(self, topic: str, partition: int) -> None:
        if self._lag.pop((topic, partition), None) is not None:
            with contextlib.suppress(KeyError):
                self._f.lag.remove(self.group, topic, str(partition))
