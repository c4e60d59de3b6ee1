"""Settings of the two bridge processes (one frozen ProcessSettings subclass each).

Shared server addresses come from the unprefixed ``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL``, ``NATS_URL``;
everything else from ``REDIS_BRIDGE_*`` / ``NATS_BRIDGE_*``. CLI options override both.

TTL defaults (seconds) follow seed 004's "TTL per surface" idea: live surfaces expire quickly so a dead
feed shows up as a missing key, history-like surfaces (bars) live a trading day.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tickwire.settings import ProcessSettings

# The canonical topics a bridge consumes by default (names from tickwire/contract/routing.py's scheme).
CANONICAL_TOPICS: tuple[str, ...] = (
    *(f"{c}_trades_realtime" for c in ("stock", "crypto", "option", "future", "fx")),
    *(f"{c}_quotes_realtime" for c in ("stock", "crypto", "option", "future", "fx")),
    *(f"{c}_bars_staging" for c in ("stock", "crypto", "future")),
    *(f"{c}_book_realtime" for c in ("stock", "crypto", "future")),
)


class _BridgeSettings(ProcessSettings):
    kafka_bootstrap_servers: str = Field("127.0.0.1:19092", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    registry_url: str | None = None  # Schema Registry for the Avro codec; None = local schema ids
    topics: tuple[str, ...] = CANONICAL_TOPICS
    topic_prefix: str = ""  # test isolation: prefixed to consumed topics, DLQ topic and app id
    app_id: str = ""
    # faust batching (stream.noack_take): a batch is written when it has batch_max records or batch_within_ms
    # after the previous one, whichever comes first; batch_max bounds one Redis transaction / JetStream burst.
    batch_max: int = Field(5000, ge=1)
    batch_within_ms: float = Field(5.0, gt=0)
    commit_interval_s: float = Field(1.0, gt=0)  # faust broker_commit_interval (acked = written batches)
    max_poll_records: int = Field(5000, ge=1)  # faust broker_max_poll_records
    max_fetch_bytes: int = Field(8 * 1024 * 1024, ge=1024)  # faust consumer_max_fetch_size (per partition)
    stream_buffer_maxsize: int = Field(20_000, ge=1)  # faust channel queue: fetched, not yet batched
    fast_fetch: bool = True  # runtime._fast_transport: faust's fetcher without its per-message tasks
    retry_base_s: float = Field(0.2, gt=0)
    retry_max_s: float = Field(5.0, gt=0)
    metrics_port: int = 0  # 0 = no Prometheus HTTP endpoint
    data_dir: str = ""  # faust data dir; default under the system temp dir
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
    redis_url: str = Field("redis://127.0.0.1:16379/0", validation_alias="REDIS_URL")
    key_prefix: str = ""  # prefixed to every key and channel (test isolation)
    timestamp_digits: int = Field(3, ge=0, le=9)  # fractional second digits of legacy ISO timestamps
    # TTLs in seconds per surface.
    ttl_ticker_s: int = Field(300, ge=1)
    ttl_trades_s: int = Field(3600, ge=1)
    ttl_book_s: int = Field(300, ge=1)
    ttl_bars_s: int = Field(86400, ge=1)
    ttl_heartbeat_s: int = Field(30, ge=1)
    ttl_state_s: int = Field(7 * 86400, ge=1)  # the bridge's own offsets hash and durable book state
    trades_max: int = Field(1000, ge=1)
    bars_max: int = Field(1440, ge=1)  # per bars list: one trading day of 1-minute bars
    book_depth: int = Field(10, ge=1)  # levels per side written to market:{symbol}:book
    stale_after_s: float = Field(60.0, gt=0)
    monitor_interval_s: float = Field(5.0, gt=0)  # heartbeat + staleness check period
    control_plane: bool = True
    control_topic: str = "control.subscriptions"
    # Legacy subscription type -> the control.subscriptions keys ("vendor:stream_type") it drives.
    # Seed 000's consumers subscribe bars and trades per symbol: the same two Alpaca stream types here.
    control_map: dict[str, tuple[str, ...]] = {
        "stock": ("alpaca:trades", "alpaca:bars"),
        "crypto": ("alpaca-crypto:trades", "alpaca-crypto:bars"),
    }


class NatsBridgeSettings(_BridgeSettings):
    model_config = SettingsConfigDict(
        env_prefix="NATS_BRIDGE_", frozen=True, extra="forbid", populate_by_name=True
    )

    app_id: str = "tickwire-bridge-nats"
    nats_url: str = Field("nats://127.0.0.1:14222", validation_alias="NATS_URL")
    stream: str = "MARKET_DATA"
    subject_prefix: str = ""  # test isolation: "t1." -> subjects t1.market.stocks.trades, stream t1.market.>
    max_age_s: float = Field(24 * 3600, gt=0)
    # Replay horizon: a batch re-published within this window after its first publish (bridge restart,
    # NATS outage, redelivery) is deduplicated by JetStream. Costs server memory per message id.
    duplicate_window_s: float = Field(20 * 60, gt=0)
    ack_timeout_s: float = Field(5.0, gt=0)
