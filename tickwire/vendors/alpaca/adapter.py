"""Alpaca market-data WebSocket (stocks iex/sip, crypto v1beta3/crypto/us): adapter for the runner.

Frames are JSON arrays (or MessagePack arrays with ``--msgpack``) of objects tagged by ``T``. The adapter
reads only what it needs: the symbols ``S`` of a frame (partition key), whether it carries data, and the
error / subscription control messages.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import msgpack
import orjson

from tickwire.contract.adapter import (
    AuthError,
    ConfigError,
    Conn,
    Frame,
    RetryableVendorError,
    Subs,
    SymbolLimitError,
    VendorWarning,
)
from tickwire.contract.adapter_base import AdapterBase, await_frame
from tickwire.contract.settings import is_local_url
from tickwire.logs import kv
from tickwire.vendors.alpaca.settings import AlpacaSettings

log = logging.getLogger(__name__)

SOURCE = "alpaca"
# Subscription action keys <-> data message tags.
STOCK_TYPES = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
CRYPTO_TYPES = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "orderbooks")
DATA_TAGS = frozenset({"t", "q", "b", "u", "d", "s", "l", "o", "c", "x"})
AUTH_CODES = frozenset({401, 402, 404})
HANDSHAKE_TIMEOUT_S = 15.0


class AlpacaAdapter(AdapterBase):
    source = SOURCE

    def __init__(self, settings: AlpacaSettings, *, feed: str, url: str | None = None) -> None:
        self.s = settings
        self.crypto = feed == "crypto"
        self.stream = "crypto.us" if self.crypto else f"stocks.{settings.feed}"
        self.control_vendor = "alpaca-crypto" if self.crypto else "alpaca"
        self.msgpack = settings.msgpack
        self.content_type = "msgpack" if self.msgpack else "json"
        self._url = url or (settings.crypto_url if self.crypto else _stock_url(settings))
        self.types = CRYPTO_TYPES if self.crypto else STOCK_TYPES
        key, secret = settings.api_key, settings.secret_key
        self._key = key.get_secret_value() if key else ""
        self._secret = secret.get_secret_value() if secret else ""

    # -- connection --

    def http_headers(self) -> list[str]:
        return ["Content-Type: application/msgpack"] if self.msgpack else []

    def _encode(self, obj: dict[str, Any]) -> Frame:
        if self.msgpack:
            packed: bytes = msgpack.packb(obj)
            return packed
        return orjson.dumps(obj).decode()

    def handshake(self, conn: Conn) -> None:
        self._await(conn, "connected")
        conn.send(self._encode({"action": "auth", "key": self._key, "secret": self._secret}))
        self._await(conn, "authenticated")
        log.info("authenticated %s", kv(stream=self.stream))

    def _await(self, conn: Conn, msg: str) -> None:
        def found(frame: bytes) -> bool:
            return any(m.get("T") == "success" and m.get("msg") == msg for m in self._messages(frame))

        await_frame(conn, HANDSHAKE_TIMEOUT_S, self.check, found)

    def action_frames(self, verb: str, subs: Subs) -> list[Frame]:
        body: dict[str, Any] = {t: sorted(s) for t, s in subs.items() if s}
        if not body:
            return []
        return [self._encode({"action": verb, **body})]

    # -- frames --

    def _messages(self, frame: bytes) -> list[dict[str, Any]]:
        try:
            obj = msgpack.unpackb(frame, raw=False) if self.msgpack else orjson.loads(frame)
        except Exception:
            return []
        if isinstance(obj, dict):
            obj = [obj]
        return [m for m in obj if isinstance(m, dict)] if isinstance(obj, list) else []

    def classify(self, frame: bytes) -> str | None:
        symbols = {m.get("S") for m in self._messages(frame)}
        if len(symbols) == 1:
            (sym,) = symbols
            return sym if isinstance(sym, str) else None
        return None

    def is_data(self, frame: bytes) -> bool:
        return any(m.get("T") in DATA_TAGS for m in self._messages(frame))

    def check(self, frame: bytes) -> Subs | None:
        acked: Subs | None = None
        for m in self._messages(frame):
            tag = m.get("T")
            if tag == "error":
                self._raise(m.get("code"), str(m.get("msg", "")))
            elif tag == "subscription":
                acked = {t: frozenset(m.get(t) or ()) for t in self.types if t in m}
        return acked

    def _raise(self, code: Any, msg: str) -> None:
        text = f"alpaca error {code}: {msg}"
        if code in AUTH_CODES:
            raise AuthError(text)
        if code == 406:  # connection limit: the old connection lingers ~90 s server-side
            raise RetryableVendorError(text, self.s.conn_limit_backoff_s)
        if code == 405:
            raise SymbolLimitError(text)
        if code == 407:  # slow client: reconnect (normal backoff)
            raise RetryableVendorError(text)
        if code in (409, 400, 410, 403):  # partial/invalid request: keep the rest of the session
            raise VendorWarning(text)
        raise RetryableVendorError(text)


def _stock_url(s: AlpacaSettings) -> str:
    # The default URL names the iex feed; switching the feed switches the default path too.
    default = "wss://stream.data.alpaca.markets/v2/iex"
    if s.stock_url == default and s.feed != "iex":
        return f"wss://stream.data.alpaca.markets/v2/{s.feed}"
    return s.stock_url


def default_subs(settings: AlpacaSettings, feed: str) -> Subs:
    if feed == "crypto":
        return {t: frozenset(settings.crypto_symbols) for t in settings.crypto_channels}
    return {t: frozenset(settings.symbols) for t in settings.stock_channels}


_SIM_CREDENTIAL = "simulator"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--feed", choices=("stocks", "crypto"), default="stocks", help="stocks or crypto")
    p.add_argument("--msgpack", action="store_true", default=None, help="MessagePack frames")


def build(args: argparse.Namespace, overrides: dict[str, Any]) -> tuple[AlpacaSettings, AlpacaAdapter, Subs]:
    ov = dict(overrides)
    if args.msgpack is not None:
        ov["msgpack"] = args.msgpack
    a = AlpacaSettings.load(**ov)
    url = args.url or (a.crypto_url if args.feed == "crypto" else _stock_url(a))
    if a.api_key is None or a.secret_key is None:
        if not is_local_url(url):
            raise ConfigError(
                "Alpaca credentials missing: set ALPACA_API_KEY and ALPACA_SECRET_KEY "
                "(only a simulator URL on localhost runs without them)"
            )
        a = AlpacaSettings.load(**ov, api_key=_SIM_CREDENTIAL, secret_key=_SIM_CREDENTIAL)
    return a, AlpacaAdapter(a, feed=args.feed, url=url), default_subs(a, args.feed)
