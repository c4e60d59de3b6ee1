"""Binance spot WebSocket: one ``/stream`` connection with live SUBSCRIBE/UNSUBSCRIBE, plus REST side fetches.

The ``/stream`` endpoint wraps every event as ``{"stream":"btcusdt@aggTrade","data":{...}}`` (the shape
the parser and the recorded sessions use) and, unlike a fixed ``?streams=`` URL, accepts SUBSCRIBE
methods so symbols change live. After subscribing depth for a symbol its REST snapshot is fetched and
published to the same raw topic (stream ``rest.depth?symbol=X&limit=N``) so the normalizer can sync.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import urllib.parse
from typing import Any

import orjson

from tickwire.contract.adapter import Frame, Subs, VendorWarning
from tickwire.contract.adapter_base import AdapterBase, add_rest_url_argument
from tickwire.vendors.binance.settings import BinanceSettings

log = logging.getLogger(__name__)

SOURCE = "binance"
MAX_PARAMS = 200  # streams per SUBSCRIBE message: stays far under Binance's message-size and rate limits
_STREAM_PREFIX = b'{"stream":"'


class BinanceAdapter(AdapterBase):
    source = SOURCE
    stream = "spot"
    content_type = "json"
    control_vendor = SOURCE
    subscribe_verb, unsubscribe_verb = "SUBSCRIBE", "UNSUBSCRIBE"
    # public streams: nothing to authenticate (AdapterBase.handshake)

    def __init__(
        self, settings: BinanceSettings, *, url: str | None = None, rest_url: str | None = None
    ) -> None:
        self.s = settings
        self._url = url or settings.ws_url
        self._rest = (rest_url or settings.rest_url).rstrip("/")
        self._ids = itertools.count(1)
        self._symbols: set[str] = set()  # every symbol subscribed so far (exchangeInfo filter)

    def action_frames(self, verb: str, subs: Subs) -> list[Frame]:
        params = sorted(f"{sym.lower()}@{channel}" for channel, syms in subs.items() for sym in syms)
        out: list[Frame] = []
        for i in range(0, len(params), MAX_PARAMS):
            body = {"method": verb, "params": params[i : i + MAX_PARAMS], "id": next(self._ids)}
            out.append(orjson.dumps(body).decode())
        return out

    def subscribe_frames(self, subs: Subs) -> list[Frame]:
        for syms in subs.values():
            self._symbols.update(s.upper() for s in syms)
        return super().subscribe_frames(subs)

    def rest_requests(self, added: Subs, reconnected: bool) -> list[tuple[str, str, str | None]]:
        reqs: list[tuple[str, str, str | None]] = []
        new_symbols = {s.upper() for syms in added.values() for s in syms}
        if new_symbols and self._symbols:
            q = urllib.parse.quote(json.dumps(sorted(self._symbols), separators=(",", ":")))
            reqs.append(("rest.exchangeInfo", f"{self._rest}/api/v3/exchangeInfo?symbols={q}", None))
        limit = self.s.depth_limit
        for channel, syms in added.items():
            if channel.startswith("depth"):
                for sym in sorted(syms):
                    s = sym.upper()
                    url = f"{self._rest}/api/v3/depth?symbol={s}&limit={limit}"
                    reqs.append((f"rest.depth?symbol={s}&limit={limit}", url, s))
        return reqs

    def classify(self, frame: bytes) -> str | None:
        # Cheap: the symbol is the stream-name prefix of the combined wrapper; no JSON parse.
        if frame.startswith(_STREAM_PREFIX):
            end = frame.find(b"@", len(_STREAM_PREFIX))
            if end > 0:
                return frame[len(_STREAM_PREFIX) : end].decode("ascii", "replace").upper()
        return None

    def is_data(self, frame: bytes) -> bool:
        return frame.startswith(_STREAM_PREFIX) or frame.startswith(b'{"e":')

    def check(self, frame: bytes) -> Subs | None:
        if frame.startswith(_STREAM_PREFIX):
            return None
        try:
            obj: Any = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return None
        if isinstance(obj, dict) and ("error" in obj or ("code" in obj and "result" not in obj)):
            err = obj.get("error", {"code": obj.get("code"), "msg": obj.get("msg")})
            raise VendorWarning(f"binance error: {err} (id={obj.get('id')})")
        return None


def default_subs(settings: BinanceSettings) -> Subs:
    return {c: frozenset(s.upper() for s in settings.symbols) for c in settings.channels}


add_arguments = add_rest_url_argument  # ``tickwire ingest``'s options of this vendor: only --rest-url


def build(
    args: argparse.Namespace, overrides: dict[str, Any]
) -> tuple[BinanceSettings, BinanceAdapter, Subs]:
    s = BinanceSettings.load(**overrides)
    return s, BinanceAdapter(s, url=args.url, rest_url=args.rest_url), default_subs(s)
