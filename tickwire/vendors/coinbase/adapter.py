"""Coinbase Exchange WebSocket feed: subscribe/unsubscribe per channel, key = product_id, REST /products."""

from __future__ import annotations

import argparse
import logging
from typing import Any

import orjson

from tickwire.contract.adapter import Frame, Subs, VendorWarning
from tickwire.contract.adapter_base import AdapterBase, add_rest_url_argument
from tickwire.vendors.coinbase.settings import CoinbaseSettings

log = logging.getLogger(__name__)

SOURCE = "coinbase"
DATA_TYPES = frozenset(
    {
        "heartbeat",
        "ticker",
        "match",
        "last_match",
        "snapshot",
        "l2update",
        "received",
        "open",
        "done",
        "change",
        "activate",
    }
)
_PRODUCT = b'"product_id":"'
_TYPE = b'"type":"'


class CoinbaseAdapter(AdapterBase):
    source = SOURCE
    stream = "feed"
    content_type = "json"
    control_vendor = SOURCE
    # no handshake (AdapterBase's): the subscribe message, sent next within Coinbase's 5 s, is the handshake

    def __init__(
        self, settings: CoinbaseSettings, *, url: str | None = None, rest_url: str | None = None
    ) -> None:
        self.s = settings
        self._url = url or settings.ws_url
        self._rest = (rest_url or settings.rest_url).rstrip("/")

    def action_frames(self, verb: str, subs: Subs) -> list[Frame]:
        channels = [{"name": c, "product_ids": sorted(p)} for c, p in sorted(subs.items()) if p]
        return [orjson.dumps({"type": verb, "channels": channels}).decode()] if channels else []

    def rest_requests(self, added: Subs, reconnected: bool) -> list[tuple[str, str, str | None]]:
        if reconnected or not added:
            return []
        return [("rest.products", f"{self._rest}/products", None)]

    @staticmethod
    def _field(frame: bytes, marker: bytes) -> str | None:
        i = frame.find(marker)
        if i < 0:
            return None
        j = frame.find(b'"', i + len(marker))
        return frame[i + len(marker) : j].decode("ascii", "replace") if j > 0 else None

    def classify(self, frame: bytes) -> str | None:
        return self._field(frame, _PRODUCT)

    def is_data(self, frame: bytes) -> bool:
        return self._field(frame, _TYPE) in DATA_TYPES

    def check(self, frame: bytes) -> Subs | None:
        kind = self._field(frame, _TYPE)
        if kind not in ("error", "subscriptions"):
            return None
        try:
            obj: Any = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return None
        if kind == "error":
            raise VendorWarning(f"coinbase error: {obj.get('message')} {obj.get('reason', '')}".strip())
        subs: Subs = {}
        for ch in obj.get("channels") or ():
            if isinstance(ch, dict) and isinstance(ch.get("name"), str):
                subs[ch["name"]] = frozenset(ch.get("product_ids") or ())
        return subs


def default_subs(settings: CoinbaseSettings) -> Subs:
    return {c: frozenset(settings.products) for c in settings.channels}


add_arguments = add_rest_url_argument  # ``tickwire ingest``'s options of this vendor: only --rest-url


def build(
    args: argparse.Namespace, overrides: dict[str, Any]
) -> tuple[CoinbaseSettings, CoinbaseAdapter, Subs]:
    s = CoinbaseSettings.load(**overrides)
    return s, CoinbaseAdapter(s, url=args.url, rest_url=args.rest_url), default_subs(s)
