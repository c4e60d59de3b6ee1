"""IBKR producer: ``tickwire ingest ibkr`` — one TWS / IB Gateway API connection (``tws://HOST:PORT``).

The shared runner drives it (connect -> subscribe -> read, reconnect with the shared backoff forever,
live symbol changes from ``control.subscriptions``); the transport is this adapter's ``TwsLink``: a TCP
socket speaking the TWS API (``wire.py``), below any client library's object layer, so every message is
published exactly as received (payload = the message body after its length prefix; content type
``tws``) with its request's context header (``server_version``, ``req_id``, ``symbol``, ``exchange``,
``kind``; see ``requests.py`` for what is requested and the fallbacks).

Codes: 2152 -> that exchange falls back to top of book; 309 -> the refused depth falls back to top of
book; 1100 -> wait; 1101 -> a Gap and every subscription requested again; 1102 -> nothing lost;
2103 then 2104 -> a Gap, cancel and request every subscription again; 420/162 on real-time bars ->
asked again after ``pacing_retry_s``; 326 -> exit 2 naming the client id. SIGTERM cancels every live
subscription, then disconnects. Outgoing requests are paced (token bucket + real-time-bar window).
Control vendor ``ibkr``, stream types ``l2`` and ``standard``: ``tickwire subscriptions add ibkr l2 NVDA``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

from tickwire.contract.adapter import Frame, Subs
from tickwire.contract.adapter_base import AdapterBase, link_address, settings_overrides
from tickwire.contract.records import Gap
from tickwire.vendors.ibkr import requests as rq
from tickwire.vendors.ibkr import wire
from tickwire.vendors.ibkr.link import DATA_IDS, SOURCE, TwsLink
from tickwire.vendors.ibkr.settings import IbkrSettings
from tickwire.vendors.ibkr.wire import In

log = logging.getLogger(__name__)


class IbkrAdapter(AdapterBase):
    source = SOURCE
    content_type = "tws"
    control_vendor = SOURCE

    def __init__(self, settings: IbkrSettings, *, url: str | None = None) -> None:
        self.s = settings
        self.stream = f"tws.{settings.client_id}"
        self._url = url or settings.url
        self.book = rq.RequestBook(
            rq.Plan(
                tuple(settings.l2_exchanges),
                settings.depth_rows,
                tuple(settings.tick_by_tick),
                settings.real_time_bars,
                settings.bars_what,
                settings.bars_use_rth,
                settings.currency,
            )
        )
        self.pacer = rq.Pacer(settings.max_msgs_per_s, settings.rtb_max_requests, settings.rtb_window_s)
        self.link: TwsLink | None = None
        self.resubscribes = 0

    # -- the runner's adapter protocol --

    # handshake: none here; the API handshake happens in ``open_link``, the link is handed over once TWS is
    # ready

    def open_link(self, url: str, timeout: float, report_gap: Callable[[Gap], None]) -> TwsLink:
        host, port = link_address(url, "tws", "IBKR")
        self.pacer = rq.Pacer(self.s.max_msgs_per_s, self.s.rtb_max_requests, self.s.rtb_window_s)
        return TwsLink(self, host, port, timeout, report_gap)

    def subscribe_frames(self, subs: Subs) -> list[Frame]:
        out: list[Frame] = []
        for stream_type, symbols in sorted(subs.items()):
            for sym in sorted(symbols):
                out += [wire.frame(self.book.request(s)) for s in self.book.add(sym, stream_type == "l2")]
        return out

    def unsubscribe_frames(self, subs: Subs) -> list[Frame]:
        out: list[Frame] = []
        for symbols in subs.values():
            for sym in sorted(symbols):
                out += [wire.frame(self.book.cancel(s)) for s in self.book.remove(sym)]
        return out

    def classify(self, frame: bytes) -> str | None:
        try:
            f = wire.fields_of(frame)
            sub = self.book.context(int(f[1] if int(f[0]) == In.TICK_BY_TICK else f[2]))
        except (wire.WireError, ValueError, IndexError):
            return None
        return sub.symbol if sub else None

    def is_data(self, frame: bytes) -> bool:
        return wire.msg_id(frame) in DATA_IDS

    def check(self, frame: bytes) -> Subs | None:
        """Codes are acted on in the link (it owns the request book)."""
        return None

    def session_stats(self) -> dict[str, float]:
        link = self.link
        return {
            "logged_on": float(link is not None),
            "subscriptions": float(len(self.book.live)),
            "queued_requests": float(len(self.pacer)),
            "rtb_waiting": float(self.pacer.rtb_waiting()),
            "resubscribes": float(self.resubscribes),
            "connectivity_lost": float(link is not None and link.lost_since is not None),
        }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--client-id", type=int, help="TWS API client id (default 1)")
    p.add_argument(
        "--l2-symbols", help="comma-separated symbols with depth per exchange (default SPY,QQQ,IWM)"
    )
    p.add_argument("--symbols", help="comma-separated standard symbols (SMART depth)")
    p.add_argument("--l2-exchanges", help="comma-separated depth exchanges (default ARCA,ISLAND,BATS)")
    p.add_argument("--depth-rows", type=int, help="depth rows per side")


_ARGS = {
    "client_id": "client_id",
    "l2_symbols": "l2_symbols",
    "symbols": "symbols",
    "l2_exchanges": "l2_exchanges",
    "depth_rows": "depth_rows",
}


def build(args: argparse.Namespace, overrides: dict[str, Any]) -> tuple[IbkrSettings, IbkrAdapter, Subs]:
    s = IbkrSettings.load(**settings_overrides(args, _ARGS, overrides))
    adapter = IbkrAdapter(s, url=getattr(args, "url", None))
    return s, adapter, {"l2": frozenset(s.l2_symbols), "standard": frozenset(s.symbols)}
