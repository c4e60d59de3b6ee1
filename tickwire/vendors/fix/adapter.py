"""FIX 4.4 LP producer: ``tickwire ingest fix --session NAME`` (one process per LP session).

The shared runner drives it like any vendor (connect -> handshake -> subscribe -> read, reconnect with the
shared backoff, live subscription changes from ``control.subscriptions``); the transport is this
adapter's own ``FixLink`` (TCP + the pure session layer in ``session.py``) instead of a WebSocket:

- ``open_link`` connects, sends Logon and returns once the peer's Logon arrived (or raises).
- ``recv`` feeds socket bytes and the clock to the session, writes what it answers (heartbeats, test
  requests, resend requests, gap fills), persists the sequence numbers **before** writing, and returns the
  in-order inbound messages as raw records (bytes exactly as received, ``tw-vendor-seq`` = 34). Resent
  duplicates are dropped there; a MsgSeqNum gap becomes a Gap record on ``tickwire.gaps``.
- ``subscribe_frames`` / ``unsubscribe_frames`` are the session's V messages (original MDReqIDs).
- ``close`` is a Logout and its confirm (SIGTERM ends the session properly).

Raw key: the MDReqID (262) of W/X/Y, so each subscription's messages stay in order on one partition;
session messages are keyed by the stream. Control vendor ``fix``, stream type = the session name:
``tickwire subscriptions add fix lp-alpha AUD/USD``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from tickwire.contract.adapter import Frame, Received, Subs, VendorWarning
from tickwire.contract.adapter_base import AdapterBase, link_address, settings_overrides
from tickwire.contract.envelope import H_VENDOR_SEQ
from tickwire.contract.records import Gap
from tickwire.logs import kv
from tickwire.vendors.fix import events as ev
from tickwire.vendors.fix.events import Phase, SessionConfig
from tickwire.vendors.fix.session import FixSession
from tickwire.vendors.fix.settings import FixSettings
from tickwire.vendors.fix.store import SeqStore

log = logging.getLogger(__name__)

SOURCE = "fix"
_DATA = (b"\x0135=W\x01", b"\x0135=X\x01")
_REJECT = b"\x0135=Y\x01"
_MDREQID = b"\x01262="


class FixLink:
    """One TCP connection carrying one FIX session; see the module docstring."""

    def __init__(
        self,
        adapter: FixAdapter,
        host: str,
        port: int,
        timeout: float,
        report_gap: Callable[[Gap], None],
    ) -> None:
        self.a = adapter
        self.session = adapter.session
        self._report_gap = report_gap
        self._closed: str | None = None
        self._ready: list[Received] = []
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._handle(self.session.connected(time.time_ns()), time.time_ns())
        deadline = time.monotonic() + adapter.s.logon_timeout_s
        while self.session.phase is not Phase.ACTIVE:
            if self._closed is not None or time.monotonic() >= deadline:
                reason = self._closed or "logon not answered"
                self._shut()
                raise ConnectionError(f"FIX logon failed: {reason}")
            self._ready += self._read(0.2) or []
        log.info(
            "FIX session logged on %s",
            kv(
                session=adapter.s.session,
                next_in=self.session.seqs.next_in,
                next_out=self.session.seqs.next_out,
            ),
        )

    # -- Link --

    def recv(self, timeout: float) -> list[Received] | None:
        if self._ready:
            out, self._ready = self._ready, []
            return out
        if self._closed is not None:
            raise ConnectionError(f"FIX session ended: {self._closed}")
        return self._read(timeout)

    def send(self, data: Frame) -> None:
        self.a.store.save(self.session.seqs)  # the store knows every number before the peer does
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def ping(self) -> None:
        """Liveness is the session's Heartbeat/TestRequest, run on every ``recv``."""

    def close(self) -> list[Received]:
        """Logout, then read until its confirm: what arrives meanwhile is returned for publishing."""
        tail, self._ready = self._ready, []
        if self._closed is None and self.session.phase is Phase.ACTIVE:
            tail += self._handle(self.session.logout("logout", time.time_ns()), time.time_ns())
            deadline = time.monotonic() + self.a.s.logout_timeout_s
            while self._closed is None and time.monotonic() < deadline:
                try:
                    tail += self._read(0.1) or []
                except OSError:
                    break
        self._shut()
        return tail

    def abort(self) -> None:
        """Reads time out within a fraction of a second: the runner's stop flag is seen soon enough."""

    # -- internals --

    def _read(self, timeout: float) -> list[Received] | None:
        self.sock.settimeout(max(0.001, timeout))
        try:
            data: bytes | None = self.sock.recv(65536)
        except TimeoutError:
            data = None
        ts_recv = time.time_ns()  # first thing after the read returns
        if data == b"":
            self._closed = "peer closed the connection"
            self._shut()
            raise ConnectionError(f"FIX session ended: {self._closed}")
        items: list[Received] = []
        if data is not None:
            items += self._handle(self.session.on_bytes(data, ts_recv), ts_recv)
        items += self._handle(self.session.on_timer(time.time_ns()), ts_recv)
        return items if data is not None or items else None

    def _handle(self, out: ev.Output, ts_recv: int) -> list[Received]:
        self.a.store.save(self.session.seqs)
        if out.send:
            try:
                self.sock.sendall(b"".join(out.send))
            except OSError as exc:
                out.close = out.close or f"write failed: {exc}"
        items: list[Received] = []
        for e in out.events:
            if isinstance(e, ev.Inbound):
                headers = ((H_VENDOR_SEQ, str(e.msg.seq).encode()),)
                items.append(Received(e.msg.raw, ts_recv, headers))
            else:
                self.a.on_event(e, ts_recv, self._report_gap)
        if out.close is not None:
            self._closed = out.close
            log.warning("FIX session closing %s", kv(session=self.a.s.session, reason=out.close))
            self._shut()
        return items

    def _shut(self) -> None:
        self.session.disconnected()
        self.a.store.save(self.session.seqs)
        with contextlib.suppress(OSError):
            self.sock.close()


class FixAdapter(AdapterBase):
    source = SOURCE
    content_type = "fix"
    control_vendor = SOURCE

    def __init__(self, settings: FixSettings, *, url: str | None = None) -> None:
        self.s = settings
        self.stream = settings.session
        self._url = url or settings.url
        self.store = SeqStore(settings.store_path())
        self.session = FixSession(
            SessionConfig(
                sender=settings.sender_comp_id,
                target=settings.target_comp_id,
                heartbeat_s=settings.heartbeat_s,
                reset_on_logon=settings.reset_on_logon,
                username=settings.username,
                password=settings.password.get_secret_value() if settings.password else None,
                depth=settings.depth,
                update_type=settings.update_type,
                entry_types=tuple(settings.entry_types),
                md_req_prefix=f"{settings.session}-",
                logon_timeout_s=settings.logon_timeout_s,
                logout_timeout_s=settings.logout_timeout_s,
            ),
            self.store.load(),
            settings.symbols,
        )
        self.store.save(self.session.seqs)
        self.rejects = 0
        self.gaps = 0

    # -- the runner's adapter protocol --

    # handshake: none here; logon happens in ``open_link``, the link is handed over once the session is up

    def open_link(self, url: str, timeout: float, report_gap: Callable[[Gap], None]) -> FixLink:
        host, port = link_address(url, "fix", "FIX")
        return FixLink(self, host, port, timeout, report_gap)

    def _symbols(self, subs: Subs) -> list[str]:
        return sorted({s for syms in subs.values() for s in syms})

    def subscribe_frames(self, subs: Subs) -> list[Frame]:
        return list(self.session.subscribe(self._symbols(subs), time.time_ns()).send)

    def unsubscribe_frames(self, subs: Subs) -> list[Frame]:
        return list(self.session.unsubscribe(self._symbols(subs), time.time_ns()).send)

    def classify(self, frame: bytes) -> str | None:
        i = frame.find(_MDREQID)
        if i < 0:
            return None
        j = frame.find(b"\x01", i + len(_MDREQID))
        return frame[i + len(_MDREQID) : j].decode("latin-1") if j > 0 else None

    def is_data(self, frame: bytes) -> bool:
        return any(marker in frame[:40] for marker in _DATA)

    def check(self, frame: bytes) -> Subs | None:
        if _REJECT in frame[:40]:
            raise VendorWarning(f"MarketDataRequestReject {kv(md_req_id=self.classify(frame))}")
        return None

    # -- session events --

    def on_event(self, e: ev.Event, ts: int, report_gap: Callable[[Gap], None]) -> None:
        name = self.s.session
        if isinstance(e, ev.SeqGap):
            self.gaps += 1
            log.warning(
                "FIX MsgSeqNum gap, ResendRequest sent %s",
                kv(session=name, expected=e.expected, got=e.received),
            )
            report_gap(
                Gap(
                    source=SOURCE,
                    stream=name,
                    reason="vendor_seq_jump",
                    detected_by="producer",
                    last_seq_before=e.expected - 1,
                    first_seq_after=e.received,
                    ts_start=ts,
                    ts_end=ts,
                    detail=f"FIX MsgSeqNum {e.expected} expected, {e.received} received; ResendRequest sent",
                )
            )
        elif isinstance(e, ev.MDRejected):
            self.rejects += 1
            log.error(
                "FIX market data request rejected %s",
                kv(
                    session=name,
                    symbol=e.symbol,
                    md_req_id=e.reject.md_req_id,
                    reason=e.reject.reason_text,
                    text=e.reject.text,
                ),
            )
        elif isinstance(e, ev.LoggedOn | ev.GapFilled | ev.SeqReset):
            log.info("FIX session event %s", kv(session=name, event=e))
        elif isinstance(e, ev.Duplicate):
            log.debug("FIX duplicate dropped %s", kv(session=name, seq=e.seq))
        else:
            log.warning("FIX session event %s", kv(session=name, event=e))

    def session_stats(self) -> dict[str, float]:
        """Session state for the metrics and the live view (``tickwire_ingest_session{field=...}``)."""
        s = self.session
        hb = s.last_heartbeat_in or s.last_recv
        return {
            "logged_on": float(s.phase is Phase.ACTIVE),
            "seq_in": float(s.seqs.next_in - 1),
            "seq_out": float(s.seqs.next_out - 1),
            "heartbeat_age_s": (time.time_ns() - hb) / 1e9 if hb else -1.0,
            "rejects": float(self.rejects),
            "gaps": float(self.gaps),
        }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--session", help="session name: stream id and sequence store (default lp-alpha)")
    p.add_argument("--sender", help="our SenderCompID (49)")
    p.add_argument("--target", help="the LP's CompID (56)")
    p.add_argument("--heartbeat", type=int, help="HeartBtInt (108) in seconds")
    p.add_argument("--symbols", help="comma-separated FX pairs, e.g. EUR/USD,GBP/USD")
    p.add_argument("--entry-types", help="MDEntryTypes (269), e.g. 0,1,2")
    p.add_argument("--store-dir", help="directory of the per-session sequence store")
    p.add_argument("--reset-on-logon", action="store_true", help="send 141=Y: both sides restart at 1")


_ARGS = {
    "session": "session",
    "sender": "sender_comp_id",
    "target": "target_comp_id",
    "heartbeat": "heartbeat_s",
    "symbols": "symbols",
    "entry_types": "entry_types",
    "store_dir": "store_dir",
}


def build(args: argparse.Namespace, overrides: dict[str, Any]) -> tuple[FixSettings, FixAdapter, Subs]:
    fields = settings_overrides(args, _ARGS, overrides)
    if getattr(args, "reset_on_logon", False):
        fields["reset_on_logon"] = True
    s = FixSettings.load(**fields)
    adapter = FixAdapter(s, url=getattr(args, "url", None))
    return s, adapter, {s.session: frozenset(s.symbols)}
