"""Settings of the Polygon/Massive producer and strike manager (env prefix ``POLYGON_``).

The API key is ``POLYGON_API_KEY`` (seed 003's name); ``MASSIVE_API_KEY`` (the official client's) is
accepted too. Both are secrets: never logged.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from tickwire.contract.settings import CsvList, IngestSettings


class PolygonSettings(IngestSettings):
    model_config = SettingsConfigDict(env_prefix="POLYGON_")

    api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("POLYGON_API_KEY", "MASSIVE_API_KEY")
    )
    stocks_url: str = "wss://socket.massive.com/stocks"
    options_url: str = "wss://socket.massive.com/options"
    # REST reference endpoint listing option contracts (the simulator serves the same shape).
    contracts_url: str = "https://api.massive.com/v3/reference/options/contracts"
    symbols: CsvList = ("SPY",)
    stock_channels: CsvList = ("T", "Q")
    option_channels: CsvList = ("T",)
    # A second connection per cluster makes the server evict the older one (max_connections, close 1008):
    # reconnecting sooner just evicts again, so wait at least this long.
    conn_limit_backoff_s: float = 60.0
    stale_after_s: float = 300.0  # stock feeds are quiet outside market hours
    metrics_port: int = 9104
    # --- strike manager ---
    strikes: bool = True  # the options producer follows the underlying with a strike window
    underlying: str = "SPY"
    strike_mode: Literal["count", "pct"] = "count"
    strike_count: int = 5  # +/- N listed strikes around the underlying price (mode "count")
    strike_pct: Decimal = Decimal(2)  # +/- X % around the underlying price (mode "pct")
    expiries: int = 2  # nearest K expiries (0DTE included when listed)
    recenter_strikes: Decimal = Decimal(2)  # re-centre once the price is this many strike steps away
    max_contracts: int = 1000  # vendor cap of option quote contracts per connection
    contracts_refresh_s: float = 3600.0
