"""Settings of the Coinbase producer process (env prefix ``COINBASE_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from tickwire.contract.settings import CsvList, IngestSettings


class CoinbaseSettings(IngestSettings):
    model_config = SettingsConfigDict(env_prefix="COINBASE_")

    products: CsvList = ("BTC-USD", "ETH-USD")
    channels: CsvList = ("heartbeat", "ticker", "matches", "level2")
    ws_url: str = "wss://ws-feed.exchange.coinbase.com"
    rest_url: str = "https://api.exchange.coinbase.com"
    metrics_port: int = 9103
