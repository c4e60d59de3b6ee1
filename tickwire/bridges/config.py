"""Settings of the two bridge processes (one frozen ProcessSettings subclass each).

Shared services come from the same unprefixed variables every tickwire process reads
(``KAFKA_BOOTSTRAP_SERVERS``, ``SCHEMA_REGISTRY_URL``, ``REDIS_URL``, ``NATS_URL``); everything else from
``REDIS_BRIDGE_*`` / ``NATS_BRIDGE_*``. ``topic_prefix`` follows the normalizer's rule: prepended to every
topic this process touches (canonical, DLQ, control) and to the app id. CLI options override both.

TTL defaults (seconds) follow seed 004's "TTL per surface" idea: live surfaces expire quickly so a dead
feed shows up as a missing key, history-like surfaces (bars) live a trading day.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from tickwire import vendors
from tickwire.settings import ProcessSettings

# The canonical topics a bridge consumes by default (names from tickwire/contract/routing.py's scheme).
CANONICAL_TOPICS: tuple[str, ...] = (
    *(f"{c}_trades_realtime" for c in ("stock", "crypto", "option", "future", "fx")),
    *(f"{c}_quotes_realtime" for c in ("stock", "crypto", "option", "future", "fx")),
    *(f"{c}_bars_staging" for c in ("stock", "crypto", "future")),
    *(f"{c}_book_realtime" for c in ("stock", "crypto", "future")),
)
# Analytics snapshots (option chains, news sentiment, technicals): Redis surfaces only (seed 004).
ANALYTICS_TOPICS: tuple[str, ...] = ("option_chains_snapshot", "news_sentiment", "technical_indicators")


ClientValue = str | int | float | bool


class _BridgeSettings(ProcessSettings):
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:19092", validation_alias=AliasChoices("kafka_bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS")
    )
    # The same registry as the normalizer's: registry-assigned schema ids decode instead of going to the DLQ.
    schema_registry_url: str | None = Field(
        None, validation_alias=AliasChoices("schema_registry_url", "SCHEMA_REGISTRY_URL")
    )
    # Extra librdkafka settings for every Kafka client of the process (security, timeouts), as JSON.
    kafka_client: dict[str, ClientValue] = {}
    topics: tuple[str, ...] = CANONICAL_TOPICS
    topic_prefix: str = ""  # test isolation: prefixed to consumed topics, DLQ/control topics and app id
    app_id: str = ""
    batch_max: int = Field(5000, ge=1, le=100_000)  # records per batch (one Redis script / JetStream burst)
    idle_poll_ms: float = Field(50.0, gt=0)  # longest wait for a first record when idle
    commit_interval_s: float = Field(1.0, gt=0)  # Kafka offset commit period (written batches only)
    max_fetch_bytes: int = Field(8 * 1024 * 1024, ge=1024)  # per partition fetch size
    session_timeout_ms: int = Field(10_000, ge=1000)
    retry_base_s: float = Field(0.2, gt=0)
    retry_max_s: float = Field(5.0, gt=0)
    # A write error no retry cures (Redis WRONGTYPE/OOM, JetStream stream full): after this many attempts
    # on a key its records go to bridge.<name>.dlq; later records on it go there at once for poison_ttl_s.
    permanent_error_attempts: int = Field(5, ge=1)
    poison_ttl_s: float = Field(60.0, gt=0)
    # Liveness (/healthz) fails when the sink loop has not run for this long (a wedged write or poll; a
    # write being retried stays alive). Above its longest blocking call, the 30 s DLQ flush (runtime/sink.py).
    loop_stall_s: float = Field(60.0, gt=0)
    metrics_port: int = 0  # 0 = no Prometheus HTTP endpoint
    metrics_host: str = "127.0.0.1"  # the endpoint's bind address (loopback unless asked)
    log_level: str = "INFO"

    @property
    def full_app_id(self) -> str:
        return self.topic_prefix + self.app_id

    @property
    def full_topics(self) -> list[str]:
        return [self.topic_prefix + t for t in self.topics]

    def prefixed(self, topic: str) -> str:
        return self.topic_prefix + topic


class RedisBridgeSettings(_BridgeSettings):
    model_config = SettingsConfigDict(
        env_prefix="REDIS_BRIDGE_", frozen=True, extra="forbid", populate_by_name=True
    )

    app_id: str = "tickwire-bridge-redis"
    topics: tuple[str, ...] = (*CANONICAL_TOPICS, *ANALYTICS_TOPICS)
    # SecretStr: a URL may carry a password (redis://user:pw@host); never shown in logs or errors.
    redis_url: SecretStr = Field(SecretStr("redis://127.0.0.1:16379/0"), validation_alias="REDIS_URL")
    key_prefix: str = ""  # prefixed to every key and channel (test isolation)
    timestamp_digits: int = Field(3, ge=0, le=9)  # fractional second digits of legacy ISO timestamps
    # TTLs in seconds per surface.
    ttl_ticker_s: int = Field(300, ge=1)
    ttl_trades_s: int = Field(3600, ge=1)
    ttl_book_s: int = Field(300, ge=1)
    ttl_bars_s: int = Field(86400, ge=1)
    ttl_heartbeat_s: int = Field(30, ge=1)
    ttl_state_s: int = Field(7 * 86400, ge=1)  # the bridge's own offsets, identity windows, book state
    ttl_options_s: int = Field(300, ge=1)  # options:{symbol}:calls|puts|chain, monitoring:options:{symbol}
    ttl_greeks_s: int = Field(300, ge=1)  # options:{symbol}:{contract}:greeks
    ttl_sentiment_s: int = Field(3600, ge=1)  # sentiment:{symbol}, monitoring:sentiment:{symbol}
    ttl_technicals_s: int = Field(900, ge=1)  # technicals:{symbol}:{indicator}
    # Record identities remembered per (type, source, stream, session, symbol): must exceed the records
    # of one key in the normalizer's open + aborted transactions (their re-production is skipped by
    # identity; see README "Live path"). The normalizer's commit_max_records bounds a transaction.
    dedupe_window: int = Field(20_000, ge=100)
    trades_max: int = Field(1000, ge=1)
    bars_max: int = Field(1440, ge=1)  # per bars list: one trading day of 1-minute bars
    book_depth: int = Field(10, ge=1)  # levels per side written to market:{symbol}:book
    stale_after_s: float = Field(60.0, gt=0)
    # Per-symbol in-memory caches (tickers, books, bar heads, identity windows) are dropped and re-read
    # from Redis past this many symbols (bounded memory; sizes in tickwire_bridge_cache_entries).
    cache_max_symbols: int = Field(50_000, ge=10)
    monitor_interval_s: float = Field(5.0, gt=0)  # heartbeat + staleness check period
    control_plane: bool = True
    control_topic: str = "control.subscriptions"
    # Legacy subscription type -> the control.subscriptions keys ("vendor:stream_type") it drives; by
    # default the union of every vendor's registry row (``legacy_control``: the seed 000 vendor's).
    control_map: dict[str, tuple[str, ...]] = Field(default_factory=lambda: legacy_control_map())


class NatsBridgeSettings(_BridgeSettings):
    model_config = SettingsConfigDict(
        env_prefix="NATS_BRIDGE_", frozen=True, extra="forbid", populate_by_name=True
    )

    app_id: str = "tickwire-bridge-nats"
    nats_url: SecretStr = Field(SecretStr("nats://127.0.0.1:14222"), validation_alias="NATS_URL")
    tls_ca_file: str | None = None  # CA of a TLS NATS server (tls:// URL); None = no TLS or system CAs
    stream: str = "MARKET_DATA"
    subject_prefix: str = ""  # test isolation: "t1." -> subjects t1.market.stocks.trades, stream t1.market.>
    max_age_s: float = Field(24 * 3600, gt=0)
    # Replay horizon: a batch re-published within this window after its first publish (bridge restart,
    # NATS outage, redelivery) is deduplicated by JetStream. Costs server memory per message id.
    duplicate_window_s: float = Field(20 * 60, gt=0)
    ack_timeout_s: float = Field(5.0, gt=0)
    # Stream size bound (-1 = none) and what a full stream does: "old" drops the oldest messages, "new"
    # refuses new ones (a permanent write error: DLQ after permanent_error_attempts).
    max_bytes: int = Field(-1, ge=-1)
    discard: str = Field("old", pattern="^(old|new)$")


def legacy_control_map() -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for spec in vendors.specs().values():
        for stype, keys in spec.legacy_control:
            out[stype] = (*out.get(stype, ()), *keys)
    return out
