"""Settings of the Alpaca producer process (env prefix ``ALPACA_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from tickwire.contract.settings import CsvList, IngestSettings


class AlpacaSettings(IngestSettings):
    model_config = SettingsConfigDict(env_prefix="ALPACA_")

    api_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    feed: Literal["iex", "sip"] = "iex"
    symbols: CsvList = ("AAPL", "SPY", "QQQ")
    crypto_symbols: CsvList = ("BTC/USD", "ETH/USD")
    stock_url: str = "wss://stream.data.alpaca.markets/v2/iex"
    crypto_url: str = "wss://stream.data.alpaca.markets/v1beta3/crypto/us"
    stock_channels: CsvList = ("trades", "quotes", "bars", "updatedBars", "dailyBars")
    crypto_channels: CsvList = ("trades", "quotes", "bars", "updatedBars", "dailyBars")
    msgpack: bool = False
    # Alpaca keeps a dropped connection alive ~90 s server-side: reconnecting sooner hits 406 again.
    conn_limit_backoff_s: float = 90.0
    stale_after_s: float = 300.0  # stock feeds are quiet outside market hours
    metrics_port: int = 9101
