"""``tickwire simulate ibkr``: a TWS API server on TCP (what TWS / IB Gateway speaks to API clients).

Handshake (``API\\0`` + version range -> server version + connection time), ``startApi`` ->
``nextValidId`` + ``managedAccounts`` + farm-OK notices, the sync replies ``ib_async`` waits for at
connect (positions, open/completed orders, account updates, executions), contract details, and data at
``--rate`` messages per second per subscription: depth (``updateMktDepthL2``; per exchange books,
several market makers on SMART), tick-by-tick AllLast / BidAsk, 5 s real-time bars, ``reqMktData`` top
of book. Every cancel is logged. Market generators: ``sim_script.py`` (deterministic from ``--seed``);
``--speed`` runs the simulated clock (tick and bar times) faster than the wall clock.

Control (HTTP on ``--control-port``, 127.0.0.1; or in process: ``command``, ``sent``, ``requests``):
  GET /control/command?cmd=no_depth&exchange=ARCA      2152 for that exchange's depth (-> top of book)
  GET /control/command?cmd=depth_limit&n=3             309 for depth requests beyond n active ones
  GET /control/command?cmd=connectivity&restore=1101&seconds=0.3   1100 -> 1101 (subscriptions lost)
  GET /control/command?cmd=connectivity&restore=1102&seconds=0.3   1100 -> 1102 (data maintained)
  GET /control/command?cmd=farm&seconds=0.3            2103 (data stops) -> 2104 (until re-requested)
  GET /control/command?cmd=client_id_in_use&client_id=7   326 at the next startApi with that id
  GET /control/command?cmd=rtb_limit&n=60&window_s=600   real-time-bar pacing: error 420 beyond it
  GET /control/command?cmd=drop                        close every client connection
  GET /control/sent?since=N     data/system messages sent: n, conn, client_id, kind, req_id, symbol,
                                exchange, fields (as on the wire), values (decoded)
  GET /control/requests?since=N every client request decoded: n, conn, client_id, op, req_id, symbol,
                                exchange, detail, smart
  GET /control/stats
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tickwire.logs import kv
from tickwire.simulators.base import SimServer
from tickwire.vendors.ibkr.sim_session import Session, Sub
from tickwire.vendors.ibkr.wire import SERVER_VERSION, ErrorMsg, Msg, text
from tickwire.vendors.ibkr.wire_requests import Request

log = logging.getLogger(__name__)


class IbkrSimulator(SimServer):
    name = "ibkr"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        control_port: int = 0,
        seed: int = 1,
        rate: float = 20.0,
        speed: float = 1.0,
        depth_rows: int = 5,
        server_version: int = SERVER_VERSION,
        log_max: int = 200_000,
        **_: Any,
    ) -> None:
        super().__init__(host, port, record_frames=False)
        self.control_port = control_port
        self.seed, self.rate, self.speed, self.depth_rows = seed, rate, speed, depth_rows
        self.server_version = server_version
        self.sessions: list[Session] = []
        self.no_depth: set[str] = set()
        self.depth_limit = 0  # 0 = unlimited
        self.rtb_limit, self.rtb_window_s = 60, 600.0
        self.busy_client_ids: set[int] = set()
        self.paused = False  # between 1100 and its restore: no data
        self._sent: deque[dict[str, Any]] = deque(maxlen=log_max)
        self._requests: deque[dict[str, Any]] = deque(maxlen=log_max)
        self._n_sent = self._n_req = 0
        self._log_lock = threading.Lock()
        self._wall0, self._mono0 = time.time(), time.monotonic()

    # ------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"tws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.control_port}"

    async def serve_async(self, on_ready: Callable[[], None] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        tws = await asyncio.start_server(self._client, self.host, self.port)
        ctl = await asyncio.start_server(self._http, "127.0.0.1", self.control_port)
        self.port = int(tws.sockets[0].getsockname()[1])
        self.control_port = int(ctl.sockets[0].getsockname()[1])
        bg = asyncio.create_task(self._market())
        self._ready.set()
        log.info("simulator listening %s", kv(vendor=self.name, url=self.url, control=self.http_url))
        if on_ready is not None:
            on_ready()
            print(f"control {self.http_url}", flush=True)
        try:
            await self._stopping.wait()
        finally:
            bg.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await bg
            for s in self.sessions:
                s.close()
            tws.close()
            ctl.close()

    def sim_time(self) -> float:
        """The simulated wall clock (epoch seconds): ``speed`` times faster than real time."""
        return self._wall0 + (time.monotonic() - self._mono0) * self.speed

    # ---------------------------------------------------------- inspection
    def sent(self, since: int = 0) -> list[dict[str, Any]]:
        with self._log_lock:
            return [e for e in self._sent if e["n"] > since]

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        with self._log_lock:
            return [e for e in self._requests if e["n"] > since]

    def stats(self) -> dict[str, Any]:
        return {
            "vendor": self.name,
            "connections": [
                {"id": s.id, "client_id": s.client_id, "open": s.open, "subscriptions": len(s.subs)}
                for s in self.sessions
            ],
            "active": sum(1 for s in self.sessions if s.open),
            "sent": self._n_sent,
            "requests": self._n_req,
        }

    def command(self, cmd: str, **kw: Any) -> None:
        """Thread-safe: run a control command (see the module docstring) in the server's loop."""
        if self.loop is None:
            raise RuntimeError("simulator not running")
        fut = asyncio.run_coroutine_threadsafe(self._command(cmd, kw), self.loop)
        fut.result(5.0)

    # ------------------------------------------------------------- output
    def out(self, s: Session, msg: Msg, kind: str = "system", sub: Sub | None = None) -> None:
        fields = [text(f) for f in msg.to_fields()]
        s.write(fields)
        with self._log_lock:
            self._n_sent += 1
            self._sent.append(
                {
                    "n": self._n_sent,
                    "conn": s.id,
                    "client_id": s.client_id,
                    "kind": kind,
                    "req_id": sub.req_id if sub else getattr(msg, "req_id", -1),
                    "symbol": sub.symbol if sub else "",
                    "exchange": sub.exchange if sub else "",
                    "fields": fields,
                    "values": {k: getattr(msg, k) for k in msg.__struct_fields__},
                }
            )

    def error(self, s: Session, req_id: int, code: int, message: str, sub: Sub | None = None) -> None:
        self.out(s, ErrorMsg(req_id, code, message, ""), "system", sub)

    def _log_request(self, s: Session, r: Request) -> None:
        with self._log_lock:
            self._n_req += 1
            self._requests.append(
                {
                    "n": self._n_req,
                    "conn": s.id,
                    "client_id": s.client_id,
                    "op": r.op,
                    "req_id": r.req_id,
                    "symbol": r.symbol,
                    "exchange": r.exchange,
                    "detail": r.detail,
                    "smart": r.smart,
                }
            )

    # ----------------------------------------------------------- sessions
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = Session(self, next(self._ids), writer)
        self.sessions.append(s)
        try:
            await s.run(reader)
        except (asyncio.IncompleteReadError, ConnectionError, struct.error):
            pass
        except Exception:
            log.exception("session failed %s", kv(vendor=self.name, conn=s.id))
        finally:
            s.close()
            log.info("client gone %s", kv(vendor=self.name, conn=s.id, client_id=s.client_id))

    def on_request(self, s: Session, r: Request) -> None:
        self._log_request(s, r)

    # -------------------------------------------------------------- market
    async def _market(self) -> None:
        period = 1.0 / max(self.rate, 0.01)
        step = 0
        while True:
            await asyncio.sleep(period)
            step += 1
            if self.paused:
                continue
            now = self.sim_time()
            for s in [x for x in self.sessions if x.open]:
                for sub in list(s.subs.values()):
                    for msg in sub.emit(now, step):
                        self.out(s, msg, sub.kind, sub)
                await s.drain()

    # ------------------------------------------------------------ commands
    async def _command(self, cmd: str, kw: dict[str, Any]) -> None:
        log.info("command %s", kv(vendor=self.name, cmd=cmd, **{k: str(v) for k, v in kw.items()}))
        live = [s for s in self.sessions if s.open]
        if cmd == "no_depth":
            ex = str(kw["exchange"])
            self.no_depth.add(ex)
            for s in live:
                for sub in [x for x in s.subs.values() if x.kind == "depth" and x.exchange == ex]:
                    s.no_depth_notice(sub)
        elif cmd == "depth_limit":
            self.depth_limit = int(kw.get("n", 3))
        elif cmd == "connectivity":
            await self._connectivity(live, str(kw.get("restore", "1101")), float(kw.get("seconds", 0.3)))
        elif cmd == "farm":
            for s in live:
                self.error(s, -1, 2103, "Market data farm connection is broken:usfarm")
                s.subs.clear()
            await asyncio.sleep(float(kw.get("seconds", 0.3)))
            for s in live:
                self.error(s, -1, 2104, "Market data farm connection is OK:usfarm")
        elif cmd == "client_id_in_use":
            self.busy_client_ids.add(int(kw["client_id"]))
        elif cmd == "rtb_limit":
            self.rtb_limit = int(kw.get("n", 60))
            self.rtb_window_s = float(kw.get("window_s", 600))
        elif cmd == "drop":
            for s in live:
                s.close()
        else:
            raise ValueError(f"unknown command {cmd!r}")
        for s in live:
            await s.drain()

    async def _connectivity(self, live: list[Session], restore: str, seconds: float) -> None:
        for s in live:
            self.error(s, -1, 1100, "Connectivity between IB and Trader Workstation has been lost.")
        self.paused = True
        await asyncio.sleep(seconds)
        for s in live:
            if restore == "1101":
                s.subs.clear()  # data lost: the client must request everything again
                self.error(s, -1, 1101, "Connectivity between IB and TWS has been restored- data lost.")
            else:
                self.error(s, -1, 1102, "Connectivity between IB and TWS has been restored- data maintained.")
        self.paused = False

    # ------------------------------------------------------------- control
    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await reader.readline()).decode(errors="replace").split()
            while (await reader.readline()).strip():
                pass
            status, body = await self._route(line[1] if len(line) > 1 else "/")
        except Exception as exc:  # a bad control request never stops the simulator
            status, body = 400, {"ok": False, "error": str(exc)}
        data = json.dumps(body, separators=(",", ":")).encode()
        head = f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        writer.write(head.encode() + b"Connection: close\r\n\r\n" + data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def _route(self, target: str) -> tuple[int, Any]:
        parts = urlsplit(target)
        q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        since = int(q.get("since", 0))
        if parts.path == "/control/sent":
            return 200, self.sent(since)
        if parts.path == "/control/requests":
            return 200, self.requests(since)
        if parts.path == "/control/stats":
            return 200, self.stats()
        if parts.path == "/control/command":
            cmd = q.pop("cmd", "")
            try:
                await self._command(cmd, dict(q))
            except (ValueError, KeyError) as exc:
                return 400, {"ok": False, "error": str(exc)}
            return 200, {"ok": True}
        return 404, {"ok": False, "error": "unknown control path"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--control-port", type=int, default=0, help="HTTP control port (0 = any free, printed)")
    p.add_argument("--speed", type=float, default=1.0, help="simulated clock speed (bar/tick times)")
    p.add_argument("--depth-rows", type=int, default=5, help="rows per side of each depth book")


def build(args: argparse.Namespace, common: dict[str, Any]) -> IbkrSimulator:
    if args.mode == "replay":
        raise SystemExit("ibkr: replay mode needs a recorded TWS session; none is available")
    return IbkrSimulator(
        args.host,
        args.port,
        control_port=args.control_port,
        seed=int(common.get("seed", 1)),
        rate=float(common.get("rate", 20.0)),
        speed=args.speed,
        depth_rows=args.depth_rows,
    )


__all__ = ["IbkrSimulator", "add_arguments", "build"]
