"""Massive (formerly Polygon.io) WebSocket, one connection per market (``stocks``, ``options``).

Session: ``connected`` -> ``{"action":"auth","params":KEY}`` -> ``auth_success``; then comma-separated
``{"action":"subscribe","params":"T.SPY,Q.SPY"}`` / ``unsubscribe``. Statuses: ``auth_failed`` -> AuthError
(exit 2 after one attempt), ``auth_timeout`` -> reconnect, ``max_connections`` (Massive allows one
connection per cluster per key and evicts the older one) -> reconnect after >= 60 s, ``error`` (e.g. not
authorized for a channel) -> warning. Subscriptions: stream type = channel (``T``, ``Q``, ``A``, ``AM``),
symbols = tickers (``SPY``, ``O:SPY251216C00676000``); the control key is ``polygon`` (stocks) or
``polygon-options``.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import msgspec
import orjson

from tickwire.contract.adapter import (
    AuthError,
    ConfigError,
    Conn,
    Frame,
    RetryableVendorError,
    Subs,
    VendorWarning,
)
from tickwire.contract.adapter_base import AdapterBase, await_frame
from tickwire.contract.settings import is_local_url
from tickwire.logs import kv
from tickwire.vendors.polygon.settings import PolygonSettings

log = logging.getLogger(__name__)

SOURCE = "polygon"
MARKETS = ("stocks", "options")
DATA_EV = frozenset({"T", "Q", "A", "AM"})
HANDSHAKE_TIMEOUT_S = 15.0
PARAMS_PER_FRAME = 200  # keeps each subscribe message small when the option set is large


class _Msg(msgspec.Struct):
    ev: str = ""
    sym: str | None = None
    status: str | None = None
    message: str = ""


_FRAME = msgspec.json.Decoder(list[_Msg])


def messages(frame: bytes) -> list[_Msg]:
    """The events of a frame (only the fields the adapter reads); [] when undecodable."""
    try:
        return _FRAME.decode(frame)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return []


def control_vendor(market: str) -> str:
    return SOURCE if market == "stocks" else f"{SOURCE}-{market}"


class PolygonAdapter(AdapterBase):
    source = SOURCE
    content_type = "json"

    def __init__(self, settings: PolygonSettings, *, market: str, url: str | None = None) -> None:
        if market not in MARKETS:
            raise ConfigError(f"unknown market {market!r}; expected one of {MARKETS}")
        self.s = settings
        self.market = market
        self.stream = market
        self.control_vendor = control_vendor(market)
        self._url = url or (settings.stocks_url if market == "stocks" else settings.options_url)
        self._key = settings.api_key.get_secret_value() if settings.api_key else ""

    def handshake(self, conn: Conn) -> None:
        self._await(conn, "connected")
        conn.send(orjson.dumps({"action": "auth", "params": self._key}).decode())
        self._await(conn, "auth_success")
        log.info("authenticated %s", kv(stream=self.stream))

    def _await(self, conn: Conn, status: str) -> None:
        def found(frame: bytes) -> bool:
            return any(m.ev == "status" and m.status == status for m in messages(frame))

        await_frame(conn, HANDSHAKE_TIMEOUT_S, self.check, found)

    def action_frames(self, verb: str, subs: Subs) -> list[Frame]:
        params = [f"{ch}.{sym}" for ch in sorted(subs) for sym in sorted(subs[ch])]
        return [
            orjson.dumps({"action": verb, "params": ",".join(params[i : i + PARAMS_PER_FRAME])}).decode()
            for i in range(0, len(params), PARAMS_PER_FRAME)
        ]

    def classify(self, frame: bytes) -> str | None:
        symbols = {m.sym for m in messages(frame)}
        if len(symbols) == 1:
            (sym,) = symbols
            return sym
        return None

    def is_data(self, frame: bytes) -> bool:
        return any(m.ev in DATA_EV for m in messages(frame))

    def check(self, frame: bytes) -> Subs | None:
        for m in messages(frame):
            if m.ev == "status" and m.status not in (None, "connected", "auth_success", "success"):
                self._raise(str(m.status), m.message)
        return None

    def _raise(self, status: str, message: str) -> None:
        text = f"massive status {status}: {message}"
        if status == "auth_failed":
            raise AuthError(text)
        if status == "max_connections":  # another connection with our key: the server evicted us
            raise RetryableVendorError(text, max(60.0, self.s.conn_limit_backoff_s))
        if status == "error":  # e.g. "not authorized" for one channel: the rest of the session works
            raise VendorWarning(text)
        raise RetryableVendorError(text)  # auth_timeout, slow_consumer, force_disconnect, ...


def default_subs(settings: PolygonSettings, market: str) -> Subs:
    if market == "options":  # the strike manager fills these in
        return {ch: frozenset() for ch in settings.option_channels}
    return {ch: frozenset(settings.symbols) for ch in settings.stock_channels}


_SIM_CREDENTIAL = "simulator"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--market", choices=MARKETS, default="stocks", help="stocks or options cluster")
    p.add_argument("--contracts-url", help="option contracts listing (default: Massive REST reference)")
    p.add_argument("--no-strikes", action="store_true", help="options: no strike manager")


def build(
    args: argparse.Namespace, overrides: dict[str, Any]
) -> tuple[PolygonSettings, PolygonAdapter, Subs]:
    ov = dict(overrides)
    if getattr(args, "contracts_url", None):
        ov["contracts_url"] = args.contracts_url
    if getattr(args, "no_strikes", False):
        ov["strikes"] = False
    s = PolygonSettings.load(**ov)
    url = args.url or (s.stocks_url if args.market == "stocks" else s.options_url)
    if s.api_key is None:
        if not is_local_url(url):
            raise ConfigError(
                "Massive API key missing: set POLYGON_API_KEY (or MASSIVE_API_KEY); "
                "only a simulator URL on localhost runs without it"
            )
        s = PolygonSettings.load(**ov, api_key=_SIM_CREDENTIAL)
    return s, PolygonAdapter(s, market=args.market, url=url), default_subs(s, args.market)


def on_runner(runner: Any) -> None:
    """Options producer: start the strike manager beside the runner (``tickwire ingest`` calls this)."""
    adapter = runner.adapter
    if isinstance(adapter, PolygonAdapter) and adapter.market == "options" and adapter.s.strikes:
        from tickwire.vendors.polygon.strikes import StrikeService

        StrikeService.for_runner(runner).start()
