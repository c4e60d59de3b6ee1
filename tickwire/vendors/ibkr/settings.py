"""Settings of the IBKR producer (env prefix ``IBKR_``): one TWS / IB Gateway API connection per process.

Seed 004's defaults: TWS paper port 7497, client id 1, Level 2 (depth per exchange) for SPY/QQQ/IWM,
SMART depth for the standard list; tick-by-tick AllLast + BidAsk and 5 s real-time bars for every symbol.
Pacing: at most 60 new real-time-bar requests per 10 minutes, at most ~45 messages per second out.
"""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from tickwire.contract.settings import CsvList, IngestSettings


class IbkrSettings(IngestSettings):
    model_config = SettingsConfigDict(env_prefix="IBKR_")

    host: str = "127.0.0.1"
    port: int = 7497
    client_id: int = 1
    l2_symbols: CsvList = ("SPY", "QQQ", "IWM")  # depth per exchange of ``l2_exchanges``
    symbols: CsvList = ()  # standard list: SMART depth
    l2_exchanges: CsvList = ("ARCA", "ISLAND", "BATS")
    depth_rows: int = 10
    tick_by_tick: CsvList = ("AllLast", "BidAsk")
    real_time_bars: bool = True
    bars_what: str = "TRADES"
    bars_use_rth: bool = False
    currency: str = "USD"
    max_msgs_per_s: float = 45.0  # outgoing token bucket (TWS disconnects above 50/s)
    rtb_max_requests: int = 60  # new real-time-bar requests per window
    rtb_window_s: float = 600.0
    pacing_retry_s: float = 60.0  # after a pacing violation (420/162), ask again this much later
    handshake_timeout_s: float = 10.0
    close_timeout_s: float = 3.0  # SIGTERM: time to send every cancel before disconnecting
    stale_after_s: float = 60.0
    ping_interval_s: float = 20.0  # reqCurrentTime keepalive
    ping_timeout_s: float = 20.0
    backoff_initial_s: float = 2.0  # seed 004: base delay 2 s; the runner never gives up
    metrics_port: int = 9107

    @property
    def url(self) -> str:
        return f"tws://{self.host}:{self.port}"
