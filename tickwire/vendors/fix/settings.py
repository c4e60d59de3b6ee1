"""Settings of one FIX 4.4 LP session producer (env prefix ``FIX_``; one process per session).

Defaults are the seed's sample session ``lp-alpha``: EUR/USD, GBP/USD, USD/JPY, heartbeat 30 s,
reconnect backoff 5 s doubling to 300 s (never giving up), V with 263=1, 264=0, 265=1, 269 bid+offer.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from tickwire.contract.settings import CsvList, IngestSettings


class FixSettings(IngestSettings):
    model_config = SettingsConfigDict(env_prefix="FIX_")

    session: str = "lp-alpha"  # stream id of the raw records and name of the sequence store
    host: str = "127.0.0.1"
    port: int = 9878
    sender_comp_id: str = "TICKWIRE"  # ours (49)
    target_comp_id: str = "LP_ALPHA"  # the LP's (56)
    heartbeat_s: int = 30  # HeartBtInt (108)
    username: str | None = None  # 553
    password: SecretStr | None = None  # 554: only ever written into the Logon, never logged
    # Reset policy: False = continue the persisted sequence numbers (a restart is no new FIX session);
    # True = 141=Y on every logon, both sides start again at 1.
    reset_on_logon: bool = False
    symbols: CsvList = ("EUR/USD", "GBP/USD", "USD/JPY")
    depth: int = 0  # 264: 0 full book, 1 top of book, N levels
    update_type: int = 1  # 265: 0 full refresh, 1 incremental
    entry_types: CsvList = ("0", "1")  # 269: 0 bid, 1 offer, 2 trade
    logon_timeout_s: float = 10.0
    logout_timeout_s: float = 2.0
    store_dir: Path | None = None  # default: <local dir>/fix-sessions
    # Seed 002's reconnect policy (5 s -> 300 s); the runner never stops retrying.
    backoff_initial_s: float = 5.0
    backoff_max_s: float = 300.0
    # The session layer's Heartbeat/TestRequest is the liveness check; the runner's watchdogs are a
    # backstop behind it (quiet FX markets can pause a while).
    stale_after_s: float = 300.0
    ping_interval_s: float = 60.0
    ping_timeout_s: float = 60.0
    metrics_port: int = 9106

    @property
    def url(self) -> str:
        return f"fix://{self.host}:{self.port}"

    def store_path(self) -> Path:
        if self.store_dir is not None:
            base = self.store_dir
        else:
            from tickwire.infra.config import load_config

            base = load_config().local_dir / "fix-sessions"
        return base / f"{self.session}.json"
