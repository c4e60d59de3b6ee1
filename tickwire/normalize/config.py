"""Settings of the normalizer: env prefix ``NORMALIZER_``, plus the shared Kafka/registry variables."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from tickwire import vendors
from tickwire.runtime.config import ClientValue
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
    # Extra librdkafka settings for every Kafka client (security, timeouts), as JSON; unprefixed and shared
    # by every tickwire process, like KAFKA_BOOTSTRAP_SERVERS.
    kafka_client_config: dict[str, ClientValue] = Field(
        default_factory=dict, validation_alias=AliasChoices("kafka_client_config", "KAFKA_CLIENT_CONFIG")
    )
    app_id: str = "tickwire-normalizer"
    # Consumer group; empty = the app id. The group also names the changelog topics
    # (``{group}-{raw topic}-changelog``) and the transactional ids (``{group}-{instance_id}``).
    group: str = ""
    # Comma-separated vendor ids; empty = every vendor of tickwire.vendors.names().
    vendors: str = ""
    # Prepended to every topic (raw, canonical, dlq, gaps) and to the app id; isolates tests.
    topic_prefix: str = ""
    metrics_port: int = 9464  # 0 = no metrics endpoint
    processing_guarantee: Literal["exactly_once", "at_least_once"] = "exactly_once"
    # Outputs are appended as they are made; a commit makes them visible to read_committed consumers, so
    # the interval bounds that visibility delay (a commit costs ~1-3 ms here: 50 ms keeps it small).
    commit_interval_s: float = Field(default=0.05, gt=0)
    commit_max_records: int = 20_000  # ... or commit after this many raw records, whichever comes first
    commit_max_outputs: int = 100_000  # ... or this many outputs (DBN raw messages fan out x1000)
    batch_size: int = 1_000  # raw records per consume() call at most
    producer_linger_ms: float = Field(default=1.0, ge=0, le=1)
    # Stable per worker slot ("0", "1", ...): transactional id ``{group}-{instance_id}``, so a restarted
    # slot aborts its killed predecessor's transaction at once. Empty = host + random (safe, slower).
    instance_id: str = ""
    static_membership: bool = False  # KIP-345 membership per instance_id (restarts keep partitions)
    session_timeout_ms: int = 10_000
    transaction_timeout_ms: int = 10_000
    # Liveness (/healthz) fails when the worker loop has not run for this long (the limit's reasoning:
    # tickwire.runtime.config ``loop_stall_s``).
    loop_stall_s: float = Field(default=60.0, gt=0)
    # Sources whose trades are aggregated into 1-minute bars (vendors without usable vendor bars).
    # Empty = the vendors whose registry row says ``bar_source`` (tickwire/vendors/<name>/__init__.py).
    bar_sources: str = ""
    bar_lateness_ms: int = 2000
    # Accepted event time around the receive time (a replay's: its own clock): at most this far ahead,
    # this far behind (bars: plus their timeframe). Outside: the raw record goes to the DLQ.
    event_ahead_ms: int = Field(default=300_000, ge=0)
    event_behind_ms: int = Field(default=86_400_000, ge=0)
    # Sources whose producers key raw records by stream, so one partition holds every seq of a stream and
    # a forward seq jump is a real gap. Symbol-keyed sources (alpaca, binance, coinbase) scatter seqs.
    # Empty = the vendors whose registry row says ``seq_gap``.
    seq_gap_sources: str = ""
    # Create missing raw/output topics (partitions below) at start; production topics come from topics.yaml.
    create_topics: bool = False
    default_partitions: int = 3
    # Unused since the normalizer keeps no local files (state lives in changelog topics); still accepted
    # because existing launch environments (bench, e2e test) set it.
    data_dir: str = ""
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
