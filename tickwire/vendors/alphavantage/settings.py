"""Settings of the Alpha Vantage poller (env prefix ``ALPHAVANTAGE_``; the key is ``ALPHAVANTAGE_API_KEY``,
a secret: never logged, never published)."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from tickwire.contract.rest import RestIngestSettings
from tickwire.contract.settings import CsvList


class AlphaVantageSettings(RestIngestSettings):
    model_config = SettingsConfigDict(env_prefix="ALPHAVANTAGE_")

    api_key: SecretStr | None = None
    base_url: str = "https://www.alphavantage.co/query"
    symbols: CsvList = ("SPY", "QQQ", "IWM", "AAPL")
    data_types: CsvList = ("options", "sentiment", "technicals")
    sentiment_skip: CsvList = ("SPY", "QQQ", "IWM", "VXX")  # ETFs have no news sentiment
    options_interval_s: float = 10.0
    sentiment_interval_s: float = 300.0
    technicals_interval_s: float = 60.0
    require_greeks: bool = True
    sentiment_limit: int = 50
    indicators: CsvList = ("RSI", "MACD", "BBANDS", "ATR")
    indicator_interval: str = "daily"
    series_type: str = "close"
    rsi_period: int = 14
    bbands_period: int = 20
    atr_period: int = 14
    stale_after_s: float = 900.0
    # A whole options chain is one response: a large underlying's passes Kafka's 1 MB default (topics.yaml
    # raises alphavantage.raw and option_chains_snapshot to 16 MiB).
    max_frame_bytes: int = 16 * 1024 * 1024 - 65_536
    metrics_port: int = 9112
