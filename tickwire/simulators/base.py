"""Vendor-neutral simulator harness: server thread, connections, fault control, HTTP control/REST routes.

A vendor simulator subclasses `SimServer`, implements `handle(conn)` (the WebSocket session) and optionally
`rest(method, path, query)` (plain HTTP answers served on the same port) and `background()` (the market
clock, e.g. a generator broadcasting to subscribers). Every frame goes out through `send(conn, data)` so
faults, counters and byte-exact recording apply uniformly.

Control endpoint (HTTP, same port; query string because the WebSocket HTTP parser refuses bodies):
  POST|GET /control/fault?fault=drop|mute|malformed|reject_auth|skip_seq|oversize&seconds=N
           [&conn=ID][&pong=0|1][&count=N][&size=BYTES]
  POST|GET /control/clear      remove all faults
  GET      /control/stats      JSON: connections (id, path, open, frames, bytes, subscriptions)

Fault semantics: drop = abort TCP now (no close frame); with seconds > 0 new connections are also cut
during the window. mute = send nothing for `seconds` (frames due meanwhile are lost, not queued);
pong=1 keeps answering pings, pong=0 also stops reading (no pongs, no server pings). malformed /
oversize = one bad / huge frame before the next frame on each targeted connection. reject_auth =
the vendor's auth/subscribe error for `seconds`. skip_seq = the vendor's next sequence numbers jump.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import http
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tickwire.logs import kv
from tickwire.simulators.conn import _FRAME_FAULTS, FAULTS, Conn, Fault, RestAnswer, json_answer

log = logging.getLogger(__name__)

__all__ = ["FAULTS", "Conn", "Fault", "RestAnswer", "SimServer", "json_answer"]


class SimServer:
    """Base of every vendor simulator; run in a background thread (`start`) or in a loop (`serve_async`)."""

    name = "sim"
    control_token: str | None = None  # /control/* needs "Authorization: Bearer <it>"; off loopback, must

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        record_frames: bool = True,
        ping_interval: float | None = None,
        ping_timeout: float = 60.0,
        max_lifetime: float | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.record_frames = record_frames
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        self.max_lifetime = max_lifetime
        self.connections: list[Conn] = []
        self.faults: list[Fault] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    # ---------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> str:
        """Serve from a daemon thread with its own event loop; returns the base ws:// URL."""
        self._thread = threading.Thread(target=self._thread_main, name=f"sim-{self.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._start_error is not None:
            raise RuntimeError(f"{self.name} simulator failed to start: {self._start_error!r}")
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        if self.loop is not None and self._stopping is not None:
            self.loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> SimServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _thread_main(self) -> None:
        try:
            asyncio.run(self.serve_async())
        except BaseException as exc:  # surfaced to start()
            self._start_error = exc
            self._ready.set()

    async def serve_async(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve until `stop()` (or cancellation)."""
        self.loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        async with serve(
            self._session,
            self.host,
            self.port,
            process_request=self._process_request,
            ping_interval=None,  # our own keepalive, so mute can silence pings too
            max_size=2**24,
            compression=None,
        ) as server:
            self.port = _bound_port(server)
            bg = asyncio.create_task(self.background())
            self._ready.set()
            log.info("simulator listening %s", kv(vendor=self.name, url=self.url))
            if on_ready is not None:
                on_ready()
            try:
                await self._stopping.wait()
            finally:
                bg.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await bg
                for c in self.active():
                    c.ws.transport.abort()

    # ------------------------------------------------------------ vendor hooks
    async def handle(self, conn: Conn) -> None:
        raise NotImplementedError

    async def background(self) -> None:
        """Market clock shared by all connections; default: nothing."""

    def rest(self, method: str, path: str, query: dict[str, str]) -> RestAnswer | None:
        """Answer a plain HTTP request, or None to continue with the WebSocket handshake."""
        return None

    def accepts(self, path: str) -> bool:
        """Whether a WebSocket upgrade to `path` is served."""
        return True

    def on_connect(self, conn: Conn, request: Request) -> None:
        """Inspect the upgrade request (e.g. content negotiation)."""

    def fault_frame(self, conn: Conn, kind: str, size: int) -> bytes:
        """The bytes of a malformed / oversized frame; vendors may override."""
        if kind == "malformed":
            return b'{"malformed":'
        pad = max(0, size - 20)
        return b'{"oversize":"' + b"x" * pad + b'"}'

    # ------------------------------------------------------------------ faults
    def inject(
        self, fault: str, seconds: float = 0.0, *, conn_id: int | None = None, count: int = 1, **opts: Any
    ) -> None:
        """Thread-safe: schedule a fault. Timed faults last `seconds`; frame faults act on the next frame."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {FAULTS}")
        if self.loop is None:
            raise RuntimeError("simulator not running")
        done = threading.Event()

        def apply() -> None:
            try:
                self._apply_fault(fault, seconds, conn_id, count, opts)
            finally:
                done.set()

        if _in_loop(self.loop):
            apply()
        else:
            self.loop.call_soon_threadsafe(apply)
            done.wait(5.0)

    def clear_faults(self) -> None:
        def apply() -> None:
            self.faults.clear()
            for c in self.connections:
                c.pending.clear()
                self._resume_reading(c)

        if self.loop is not None:
            self.loop.call_soon_threadsafe(apply)

    def _apply_fault(
        self, kind: str, seconds: float, conn_id: int | None, count: int, opts: dict[str, Any]
    ) -> None:
        log.info("fault injected %s", kv(vendor=self.name, fault=kind, seconds=seconds, conn=conn_id))
        targets = [c for c in self.active() if conn_id is None or c.id == conn_id]
        if kind in _FRAME_FAULTS:
            for c in targets:
                c.pending.append(kind)
                c.state[f"{kind}_size"] = int(opts.get("size", 2**21))
            return
        self.faults.append(Fault(kind, time.monotonic() + seconds, max(1, count), conn_id, dict(opts)))
        if kind == "drop":
            for c in targets:
                c.ws.transport.abort()
        elif kind == "mute" and not _truthy(opts.get("pong", True)):
            for c in targets:
                c.ws.transport.pause_reading()  # unread pings get no pong
                c.muted_reading = True
                self.loop_call_later(seconds, self._resume_reading, c)

    def loop_call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        assert self.loop is not None
        self.loop.call_later(delay, fn, *args)

    def _resume_reading(self, c: Conn) -> None:
        if c.muted_reading and c.open:
            c.muted_reading = False
            with contextlib.suppress(Exception):
                c.ws.transport.resume_reading()

    def fault_active(self, kind: str, conn: Conn | None = None) -> Fault | None:
        now = time.monotonic()
        self.faults = [f for f in self.faults if f.until > now or (f.kind == "skip_seq" and f.count > 0)]
        for f in self.faults:
            if f.kind == kind and (f.conn_id is None or conn is None or f.conn_id == conn.id):
                return f
        return None

    def take_skip(self) -> bool:
        """Consume one `skip_seq` fault: the caller jumps its vendor sequence numbers."""
        f = self.fault_active("skip_seq")
        if f is None or f.count <= 0:
            return False
        f.count -= 1
        return True

    # ------------------------------------------------------------------ output
    async def send(self, conn: Conn, data: bytes) -> bool:
        """Send one frame (text unless the connection is binary); False if not sent (muted/closed)."""
        if not conn.open or self.fault_active("mute", conn) is not None:
            return False
        while conn.pending:
            kind = conn.pending.pop(0)
            await self._send_raw(conn, self.fault_frame(conn, kind, int(conn.state.get(f"{kind}_size", 0))))
        return await self._send_raw(conn, data)

    async def _send_raw(self, conn: Conn, data: bytes) -> bool:
        try:
            await conn.ws.send(data, text=not conn.binary)
        except ConnectionClosed:
            conn.open = False
            return False
        conn.frames += 1
        conn.nbytes += len(data)
        if self.record_frames:
            conn.sent.append(data)
        return True

    # -------------------------------------------------------------- inspection
    def active(self) -> list[Conn]:
        return [c for c in self.connections if c.open]

    def stats(self) -> dict[str, Any]:
        return {
            "vendor": self.name,
            "connections": [
                {
                    "id": c.id,
                    "path": c.path,
                    "open": c.open,
                    "frames": c.frames,
                    "bytes": c.nbytes,
                    "subscriptions": sorted(c.subscriptions),
                }
                for c in self.connections
            ],
            "active": len(self.active()),
            "faults": [f.kind for f in self.faults],
        }

    # --------------------------------------------------------------- internals
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        method = getattr(request, "method", "GET")
        if parts.path.startswith("/control/"):
            refused = self._control_refused(request.headers.get("Authorization", ""))
            if refused:
                return connection.respond(http.HTTPStatus.UNAUTHORIZED, refused + "\n")
            answer: RestAnswer | None = self._control(parts.path, query)
        else:
            if self.fault_active("drop") is not None:
                connection.transport.abort()  # outage: refuse new connections abruptly
                return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "down\n")
            if request.headers.get("Upgrade", "").lower() == "websocket":
                if self.accepts(parts.path):
                    return None
                return connection.respond(http.HTTPStatus.NOT_FOUND, "no such stream endpoint\n")
            answer = self.rest(method, parts.path, query)
        if answer is None:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
        status, body, ctype = answer
        resp = connection.respond(status, "")
        resp.body = body
        resp.headers = Headers(
            [("Content-Type", ctype), ("Content-Length", str(len(body))), ("Connection", "close")]
        )
        return resp

    def _control_refused(self, authorization: str) -> str:
        """Why a control request is refused ("" = allowed)."""
        if self.control_token:
            ok = hmac.compare_digest(authorization.encode(), f"Bearer {self.control_token}".encode())
            return "" if ok else "control endpoints need Authorization: Bearer <token>"
        on_loopback = self.host in ("127.0.0.1", "localhost", "::1")
        return "" if on_loopback else "control endpoints are disabled off loopback without a control token"

    def _control(self, path: str, q: dict[str, str]) -> RestAnswer:
        if path == "/control/stats":
            return json_answer(self.stats())
        if path == "/control/clear":
            self.clear_faults()
            return json_answer({"ok": True})
        if path == "/control/fault":
            try:
                kind = q.get("fault", "")
                if kind not in FAULTS:
                    raise ValueError(f"unknown fault {kind!r}; expected one of {FAULTS}")
                opts: dict[str, Any] = {k: v for k, v in q.items() if k in ("pong", "size")}
                conn_id = int(q["conn"]) if "conn" in q else None
                self._apply_fault(kind, float(q.get("seconds", 0)), conn_id, int(q.get("count", 1)), opts)
            except ValueError as exc:
                return json_answer({"ok": False, "error": str(exc)}, 400)
            return json_answer({"ok": True})
        return json_answer({"ok": False, "error": "unknown control path"}, 404)

    async def _session(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else "/"
        conn = Conn(next(self._ids), path, ws)
        if ws.request is not None:
            self.on_connect(conn, ws.request)
        self.connections.append(conn)
        log.info("client connected %s", kv(vendor=self.name, conn=conn.id, path=path))
        extra = [asyncio.create_task(self._keepalive(conn))]
        if self.max_lifetime:
            extra.append(asyncio.create_task(self._expire(conn, self.max_lifetime)))
        try:
            await self.handle(conn)
        except ConnectionClosed:
            pass
        finally:
            conn.open = False
            for t in extra:
                t.cancel()
            log.info("client gone %s", kv(vendor=self.name, conn=conn.id, frames=conn.frames))

    async def _keepalive(self, conn: Conn) -> None:
        if not self.ping_interval:
            return
        while conn.open:
            await asyncio.sleep(self.ping_interval)
            if self.fault_active("mute", conn) is not None:
                continue
            try:
                waiter = await conn.ws.ping()
                await asyncio.wait_for(waiter, self.ping_timeout)
            except (ConnectionClosed, TimeoutError):
                conn.ws.transport.abort()
                return

    async def _expire(self, conn: Conn, lifetime: float) -> None:
        await asyncio.sleep(lifetime)
        await conn.ws.close(1000, "max connection lifetime")


def _bound_port(server: Server) -> int:
    for sock in server.sockets:
        return int(sock.getsockname()[1])
    raise RuntimeError("server has no socket")


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _truthy(v: Any) -> bool:
    return str(v).lower() not in ("0", "false", "no", "off", "")
