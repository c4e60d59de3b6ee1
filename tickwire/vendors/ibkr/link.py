"""The IBKR producer's transport: one TCP connection speaking the TWS API (see ``adapter.py``).

``TwsLink`` does the API handshake, publishes every data and error message exactly as received with its
request's context header, acts on the TWS codes (fallbacks, resubscribes, pacing retries, 326) through
the adapter's request book, and sends every request through the adapter's pacer.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tickwire.contract.adapter import AuthError, Frame, Received
from tickwire.contract.envelope import context_header
from tickwire.contract.records import Gap
from tickwire.logs import kv
from tickwire.vendors.ibkr import requests as rq
from tickwire.vendors.ibkr import wire
from tickwire.vendors.ibkr import wire_requests as wr
from tickwire.vendors.ibkr.wire import In

if TYPE_CHECKING:
    from tickwire.vendors.ibkr.adapter import IbkrAdapter

log = logging.getLogger(__name__)

SOURCE = "ibkr"
_KIND_BY_MSG = {
    In.TICK_PRICE: rq.TOP,
    In.TICK_SIZE: rq.TOP,
    In.TICK_GENERIC: rq.TOP,
    In.TICK_STRING: rq.TOP,
    In.MARKET_DEPTH: rq.DEPTH,
    In.MARKET_DEPTH_L2: rq.DEPTH,
    In.REAL_TIME_BARS: rq.BARS,
}
DATA_IDS = frozenset({*_KIND_BY_MSG, In.TICK_BY_TICK})
PACING_CODES = frozenset({420, 162})


class ClientIdInUse(AuthError):
    """Error 326: another API client holds this client id."""


class TwsLink:
    """One TCP connection to TWS; see the module docstring."""

    def __init__(
        self, adapter: IbkrAdapter, host: str, port: int, timeout: float, report_gap: Callable[[Gap], None]
    ) -> None:
        self.a = adapter
        self.s = adapter.s
        self._report_gap = report_gap
        self._reader = wire.FrameReader()
        self._ready: list[Received] = []
        self._retry: list[tuple[float, rq.Sub]] = []
        self.lost_since: int | None = None  # ns of the last 1100 not yet restored
        self.farm_broken_since: int | None = None
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(wire.handshake_request())
        self.server_version = 0
        self.next_valid_id: int | None = None
        self.accounts: str | None = None
        deadline = time.monotonic() + self.s.handshake_timeout_s
        bodies: list[bytes] = []
        while not bodies:
            bodies = self._handshake_read(deadline, "the server version")
        hello = wire.fields_of(bodies.pop(0))
        if len(hello) != 2 or not hello[0].isdigit():
            self._shut()
            raise ConnectionError(f"not a TWS API server: first message {hello[:3]}")
        self.server_version = int(hello[0])
        self.sock.sendall(wire.frame(wr.start_api(self.s.client_id)))
        while True:
            ts = time.time_ns()
            for b in bodies:
                self._ready += self._handle(b, ts)
            if self.next_valid_id is not None and self.accounts is not None:
                break
            bodies = self._handshake_read(deadline, "nextValidId and managedAccounts")
        adapter.book.reset_ids(self.next_valid_id)
        adapter.link = self
        log.info(
            "TWS API ready %s",
            kv(server_version=self.server_version, client_id=self.s.client_id, next_id=self.next_valid_id),
        )

    def _handshake_read(self, deadline: float, what: str) -> list[bytes]:
        left = deadline - time.monotonic()
        if left <= 0:
            self._shut()
            raise ConnectionError(f"TWS handshake timed out waiting for {what}")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            data = None
        if data == b"":
            self._shut()
            raise ConnectionError(f"TWS closed the connection before {what}")
        return self._reader.feed(data) if data else []

    # -- Link --

    def recv(self, timeout: float) -> list[Received] | None:
        self._pump()
        if self._ready:
            out, self._ready = self._ready, []
            return out
        self.sock.settimeout(max(0.001, min(timeout, 0.05) if len(self.a.pacer) or self._retry else timeout))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return None
        ts = time.time_ns()  # first thing after the read
        if not data:
            self._shut()
            raise ConnectionError("TWS closed the connection")
        items: list[Received] = []
        for b in self._reader.feed(data):
            items += self._handle(b, ts)
        self._pump()
        return items

    def send(self, data: Frame) -> None:
        self.a.pacer.push(data if isinstance(data, bytes) else data.encode())
        self._pump()

    def ping(self) -> None:
        """Keepalive: reqCurrentTime; its reply is transport traffic (not published)."""
        self.send(wire.frame(wr.req_current_time()))

    def close(self) -> list[Received]:
        """Cancel every live subscription (paced), then disconnect. Replies meanwhile are dropped.

        The socket is half-closed after the cancels and drained until the peer closes: closing with unread
        input would reset the connection and could discard the cancels still in the send buffer."""
        self._retry.clear()
        self.a.pacer.clear()
        live = sorted(self.a.book.live.values(), key=lambda s: s.req_id)
        self.a.book.live.clear()
        for sub in live:
            self.a.pacer.push(wire.frame(self.a.book.cancel(sub)))
        deadline = time.monotonic() + self.s.close_timeout_s
        try:
            while len(self.a.pacer) and time.monotonic() < deadline:
                self._pump()
                time.sleep(0.02)
            self.sock.shutdown(socket.SHUT_WR)
            while time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                if not self.sock.recv(65536):
                    break
            log.info("TWS subscriptions cancelled %s", kv(client_id=self.s.client_id, cancelled=len(live)))
        except OSError as exc:
            log.warning("TWS cancels not all sent %s", kv(client_id=self.s.client_id, error=exc))
        self._shut()
        return []

    def abort(self) -> None:
        """Reads time out within a fraction of a second: the runner's stop flag is seen soon enough."""

    # -- internals --

    def _pump(self) -> None:
        now = time.monotonic()
        due = [sub for t, sub in self._retry if t <= now]
        if due:
            self._retry = [(t, sub) for t, sub in self._retry if t > now]
            wanted = {s.symbol for s in self.a.book.live.values()}
            for sub in due:
                if sub.symbol in wanted:  # not unsubscribed meanwhile
                    self.a.pacer.push(wire.frame(self.a.book.request(self.a.book.again(sub))))
        out = self.a.pacer.ready(now)
        if out:
            self.sock.sendall(b"".join(out))

    def _push(self, fields: list[wire.Field]) -> None:
        self.a.pacer.push(wire.frame(fields))

    def _handle(self, body: bytes, ts: int) -> list[Received]:
        try:
            f = wire.fields_of(body)
            mid = int(f[0])
            if mid in DATA_IDS:
                req_id = int(f[1] if mid == In.TICK_BY_TICK else f[2])
                kind = (
                    (rq.TBT_BIDASK if f[2] == "3" else rq.TBT_LAST)
                    if mid == In.TICK_BY_TICK
                    else _KIND_BY_MSG[In(mid)]
                )
                return [self._record(body, ts, req_id, kind)]
            if mid == In.ERR_MSG:
                return self._error(body, ts, int(f[2]), int(f[3]), f[4] if len(f) > 4 else "")
            if mid == In.NEXT_VALID_ID:
                self.next_valid_id = int(f[2])
            elif mid == In.MANAGED_ACCTS:
                self.accounts = f[2]
        except (wire.WireError, ValueError, IndexError) as exc:  # published raw all the same
            log.warning("undecodable TWS message %s", kv(error=exc, head=body[:40]))
            return [self._record(body, ts, -1, "system")]
        return []  # start-up noise and transport replies are not published

    def _record(self, body: bytes, ts: int, req_id: int, kind: str) -> Received:
        sub = self.a.book.context(req_id)
        symbol, exchange = (sub.symbol, sub.exchange) if sub else ("", "")
        ctx = context_header(
            {
                "server_version": self.server_version,
                "req_id": req_id,
                "symbol": symbol,
                "exchange": exchange,
                "kind": kind,
            }
        )
        return Received(body, ts, (ctx,), key=symbol or None, broadcast=not symbol and kind == "system")

    def _error(self, body: bytes, ts: int, req_id: int, code: int, text: str) -> list[Received]:
        items = [self._record(body, ts, req_id, "system")]
        book = self.a.book
        sub = book.context(req_id)
        ctx = kv(
            code=code, req_id=req_id, symbol=sub.symbol if sub else "", exchange=sub.exchange if sub else ""
        )
        if code == 326:
            log.error("TWS client id in use %s", kv(client_id=self.s.client_id, message=text))
            self._shut()
            raise ClientIdInUse(f"TWS client id {self.s.client_id} is already in use (error 326): {text}")
        if code in (2152, 309):
            dropped, top = book.fall_back(req_id)
            if dropped is not None and top is not None:
                if code == 2152:
                    self._push(book.cancel(dropped))
                self._push(book.request(top))
                log.warning("depth unavailable, top of book instead %s", ctx)
        elif code == 1100:
            self.lost_since = self.lost_since or ts
            log.warning("TWS lost connectivity to IB, waiting %s", ctx)
        elif code == 1101:
            self._renew(ts, self.lost_since or ts, "TWS 1101 connectivity restored, data lost", cancel=False)
            self.lost_since = None
        elif code == 1102:
            self.lost_since = None
            log.info("TWS connectivity restored, data maintained %s", ctx)
        elif code == 2103:
            self.farm_broken_since = self.farm_broken_since or ts
            log.warning("market data farm broken %s", ctx)
        elif code == 2104 and self.farm_broken_since is not None:
            self._renew(
                ts, self.farm_broken_since, "TWS 2103 -> 2104 market data farm reconnected", cancel=True
            )
            self.farm_broken_since = None
        elif code in PACING_CODES and sub is not None and book.refused(req_id) is not None:
            self._retry.append((time.monotonic() + self.s.pacing_retry_s, sub))
            log.warning(
                "pacing violation, asking again later %s",
                kv(code=code, req_id=req_id, symbol=sub.symbol, retry_s=self.s.pacing_retry_s),
            )
        elif 2100 <= code < 2200:  # notices: farm OK (2104, 2106, 2158), ...
            log.info("TWS notice %s", kv(code=code, req_id=req_id, message=text))
        else:
            log.warning("TWS error %s", kv(code=code, req_id=req_id, message=text))
        return items

    def _renew(self, ts: int, since: int, detail: str, *, cancel: bool) -> None:
        old, new = self.a.book.renew()
        for sub in old if cancel else ():
            self._push(self.a.book.cancel(sub))
        for sub in new:
            self._push(self.a.book.request(sub))
        self.a.resubscribes += 1
        log.warning("resubscribing everything %s", kv(reason=detail, subscriptions=len(new)))
        self._report_gap(
            Gap(
                source=SOURCE,
                stream=self.a.stream,
                reason="reconnect",
                detected_by="producer",
                ts_start=since,
                ts_end=ts,
                detail=f"{detail}; {len(new)} subscriptions requested again",
            )
        )

    def _shut(self) -> None:
        if self.a.link is self:
            self.a.link = None
        with contextlib.suppress(OSError):
            self.sock.close()
