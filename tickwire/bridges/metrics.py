"""Prometheus metrics shared by both bridges (label ``bridge`` = redis | nats)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS_IN = Counter("tickwire_bridge_records_in_total", "Kafka records consumed", ["bridge"])
RECORDS_OUT = Counter(
    "tickwire_bridge_records_out_total", "Records written (Redis) or acknowledged (JetStream)", ["bridge"]
)
SKIPPED = Counter(
    "tickwire_bridge_records_skipped_total", "Records already written before (redelivery)", ["bridge"]
)
DUPLICATES = Counter("tickwire_bridge_duplicates_total", "JetStream acks flagged duplicate", ["bridge"])
BATCH_SIZE = Histogram(
    "tickwire_bridge_batch_size",
    "Records per batch",
    ["bridge"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
)
PUBLISH_SECONDS = Histogram(
    "tickwire_bridge_publish_seconds",
    "Time to write one batch (Redis transaction / JetStream acks), successful attempts",
    ["bridge"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
LAG_SECONDS = Gauge(
    "tickwire_bridge_lag_seconds",
    "Canonical append timestamp (Kafka record timestamp) of the oldest record of the last batch to its "
    "write; while a write is being retried it grows with wall time",
    ["bridge"],
)
LAG_HIST = Histogram(
    "tickwire_bridge_lag_record_seconds",
    "Per batch: Kafka record timestamp -> write time of its oldest record",
    ["bridge"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
)
ERRORS = Counter("tickwire_bridge_errors_total", "Errors by kind", ["bridge", "kind"])
DLQ = Counter("tickwire_bridge_dlq_total", "Records sent to the bridge DLQ", ["bridge"])
RETRYING = Gauge("tickwire_bridge_retrying", "1 while a batch write is being retried", ["bridge"])
RETRYING_SINCE = Gauge(
    "tickwire_bridge_retrying_since_seconds",
    "Unix time the failing write began being retried (0 while writes succeed)",
    ["bridge"],
)
PERMANENT = Counter(
    "tickwire_bridge_permanent_errors_total",
    "Write attempts refused for a reason retries do not cure (wrong_type, oom, stream_full)",
    ["bridge", "reason"],
)
PERMANENT_DLQ = Counter(
    "tickwire_bridge_permanent_dlq_total",
    "Records sent to the bridge DLQ after their permanent write errors used up the attempts",
    ["bridge", "reason"],
)
STRIKES = Gauge("tickwire_bridge_failing_keys", "Keys with recent permanent write errors", ["bridge"])
CACHE = Gauge("tickwire_bridge_cache_entries", "Entries in a bridge's in-memory caches", ["bridge", "cache"])
