"""Settings every producer process shares; each vendor's settings class
(``tickwire/vendors/<name>/settings.py``) subclasses ``IngestSettings`` with its own env prefix.

The shared knobs (Kafka, metrics, backoff, staleness, topic prefix) live in ``IngestSettings``; each
process uses exactly one concrete subclass (``AlpacaSettings``, ``BinanceSettings``, ``CoinbaseSettings``)
so the env prefix — and therefore unknown-key rejection — is per vendor: ``ALPACA_BACKOFF_MAX_S``.
``KAFKA_BOOTSTRAP_SERVERS`` is the one unprefixed key, shared by every tickwire process.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlparse

from pydantic import AliasChoices, BeforeValidator, Field
from pydantic_settings import NoDecode, SettingsConfigDict

from tickwire.settings import ProcessSettings


def _csv(v: Any) -> Any:
    if isinstance(v, str):
        return [s.strip() for s in v.split(",") if s.strip()]
    return v


CsvList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_csv)]

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def is_local_url(url: str) -> bool:
    """Simulator URLs live on loopback and accept any credentials."""
    return (urlparse(url).hostname or "") in _LOCAL_HOSTS


class IngestSettings(ProcessSettings):
    """Settings every WebSocket producer shares. Not used directly: one subclass per process."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:19092", validation_alias=AliasChoices("kafka_bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS")
    )
    schema_registry_url: str | None = Field(
        None, validation_alias=AliasChoices("schema_registry_url", "SCHEMA_REGISTRY_URL")
    )
    # Prepended to every topic this process touches (raw, dlq, gaps, health, control): tests isolate runs.
    topic_prefix: str = ""
    metrics_port: int = 0
    heartbeat_interval_s: float = 5.0
    linger_ms: int = 5
    compression: str = "lz4"
    queue_max_kbytes: int = 65536
    # None = block on a full local queue (never drop); an int bounds the backoffs before a counted drop.
    max_full_retries: int | None = None
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    healthy_reset_s: float = 60.0  # connected with data this long -> backoff starts over
    stale_after_s: float = 30.0  # no data frames this long while connected -> reconnect
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 10.0
    connect_timeout_s: float = 10.0
    max_frame_bytes: int = 900_000  # under Kafka's default 1 MB record limit
    dlq_head_bytes: int = 4096
    rest_timeout_s: float = 15.0
    subscriptions_live: bool = True  # follow control.subscriptions

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"
