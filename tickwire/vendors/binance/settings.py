"""Settings of the Binance producer process (env prefix ``BINANCE_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from tickwire.contract.settings import CsvList, IngestSettings


class BinanceSettings(IngestSettings):
    model_config = SettingsConfigDict(env_prefix="BINANCE_")

    symbols: CsvList = ("BTCUSDT", "ETHUSDT")
    channels: CsvList = ("aggTrade", "bookTicker", "depth@100ms", "kline_1m")
    ws_url: str = "wss://stream.binance.com:9443/stream"
    rest_url: str = "https://api.binance.com"
    depth_limit: int = 1000
    metrics_port: int = 9102
