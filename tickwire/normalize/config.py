"""Settings of the normalizer: env prefix ``NORMALIZER_``, plus the shared Kafka/registry variables."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from tickwire import vendors
from tickwire.settings import ProcessSettings


class NormalizerSettings(ProcessSettings):
    model_config = SettingsConfigDict(
        env_prefix="NORMALIZER_", frozen=True, extra="forbid", populate_by_name=True
    )

    bootstrap_servers: str = Field(
        "127.0.0.1:19092",
        validation_alias=AliasChoices("bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    schema_registry_url: str | None = Field(
        None, validation_alias=AliasChoices("schema_registry_url", "SCHEMA_REGISTRY_URL")
    )
    app_id: str = "tickwire-normalizer"
    # Consumer group; empty = the app id. faust uses one id for the group, the transactional ids and the
    # table changelog topics, so a different group is a different app id (see app.py).
    group: str = ""
    # Comma-separated vendor ids; empty = every vendor of tickwire.vendors.names().
    vendors: str = ""
    # Prepended to every topic (raw, canonical, dlq, gaps) and to the app id; isolates tests.
    topic_prefix: str = ""
    metrics_port: int = 9464  # 0 = no metrics endpoint
    processing_guarantee: Literal["exactly_once", "at_least_once"] = "exactly_once"
    # Canonical records become visible to read_committed consumers when their transaction commits: the
    # commit interval is the floor of the normalizer's added latency (each commit costs ~1 ms per
    # partition with output, so 0.1 s keeps commits a small share of the time).
    commit_interval_s: float = 0.2
    # Producer record batch size (bytes); outputs are handed over as one batch per destination partition.
    producer_max_batch_size: int = 262_144
    producer_linger_ms: int = 0
    stream_buffer_maxsize: int = 16_384  # faust per-agent buffer of fetched, unprocessed raw records
    max_poll_records: int = 2_000  # raw records per consumer poll
    # Sources whose trades are aggregated into 1-minute bars (vendors without usable vendor bars).
    # Empty = the vendors whose registry row says ``bar_source`` (tickwire/vendors/<name>/__init__.py).
    bar_sources: str = ""
    bar_lateness_ms: int = 2000
    # Sources whose producers key raw records by stream, so one partition holds every seq of a stream and
    # a forward seq jump is a real gap. Symbol-keyed sources (alpaca, binance, coinbase) scatter seqs.
    # Empty = the vendors whose registry row says ``seq_gap``.
    seq_gap_sources: str = ""
    # Create missing raw/output topics (partitions below) at start; production topics come from topics.yaml.
    create_topics: bool = False
    default_partitions: int = 3
    data_dir: str = "/tmp/tickwire-normalizer"
    log_level: str = "INFO"

    def vendor_list(self) -> list[str]:
        return [v.strip() for v in self.vendors.split(",") if v.strip()]

    def bar_source_set(self) -> frozenset[str]:
        return _csv_set(self.bar_sources) or frozenset(
            s.name for s in vendors.specs().values() if s.bar_source
        )

    def seq_gap_source_set(self) -> frozenset[str]:
        return _csv_set(self.seq_gap_sources) or frozenset(
            s.name for s in vendors.specs().values() if s.seq_gap
        )

    @property
    def effective_app_id(self) -> str:
        return self.topic_prefix + (self.group or self.app_id)


def _csv_set(text: str) -> frozenset[str]:
    return frozenset(v.strip() for v in text.split(",") if v.strip())
