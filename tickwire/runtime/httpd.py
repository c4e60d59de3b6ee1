"""The HTTP endpoint of every long-running process: ``/metrics``, ``/healthz``, ``/readyz``.

One small threaded server per process (bound to 127.0.0.1 unless configured otherwise):

- ``/metrics``: Prometheus text format of the default registry (what ``start_http_server`` served);
- ``/healthz``: liveness. 200 ``{"status": "ok"}`` while every liveness check passes, else 503 with the
  failing checks and their reasons: the process should be restarted;
- ``/readyz``: readiness. 200 ``{"ready": true, "checks": {...}}`` or 503 ``{"ready": false, "checks":
  {"name": "reason", ...}}``: alive but not doing its job right now (vendor disconnected, broker or
  target unreachable, retrying a write, joining the group, ...).

A check is a function returning None when fine, else the reason as text. Processes register theirs on
the process-wide :data:`HEALTH` (producers in ``tickwire.ingest.cli``, the normalizer in
``tickwire.normalize.app``, the bridges in ``tickwire.bridges.cli``).

Deep liveness: a long-running loop owns a :class:`Heartbeat` and stamps it every iteration (idle polls
and retry waits included: retrying is a readiness matter). Its :meth:`Heartbeat.check` fails once the
stamp is older than the loop's limit, so a loop wedged in a blocking call, a deadlock or a retry loop
that never returns answers ``/healthz`` 503 and gets restarted; the stamp's age is the gauge
``tickwire_loop_heartbeat_age_seconds{loop}`` (computed at scrape time: a wedged loop cannot update it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import REGISTRY, Gauge
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from tickwire.logs import kv

log = logging.getLogger(__name__)

Check = Callable[[], str | None]


class Health:
    """Named liveness and readiness checks of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checks: dict[str, dict[str, Check]] = {"live": {}, "ready": {}}

    def liveness(self, name: str, check: Check) -> None:
        with self._lock:
            self._checks["live"][name] = check

    def readiness(self, name: str, check: Check) -> None:
        with self._lock:
            self._checks["ready"][name] = check

    def clear(self) -> None:
        with self._lock:
            for checks in self._checks.values():
                checks.clear()

    def report(self, kind: str) -> tuple[bool, dict[str, str]]:
        """(all passed, name -> "ok" or the reason) for ``kind`` ``live`` or ``ready``; a liveness
        failure also fails readiness."""
        with self._lock:
            checks = dict(self._checks["live"])
            if kind == "ready":
                checks.update(self._checks["ready"])
        out: dict[str, str] = {}
        ok = True
        for name, check in sorted(checks.items()):
            try:
                reason = check()
            except Exception as exc:  # a broken check is a failed check, never a broken endpoint
                reason = f"check raised {type(exc).__name__}: {exc}"
            out[name] = "ok" if reason is None else reason
            ok = ok and reason is None
        return ok, out


HEALTH = Health()

LOOP_AGE = Gauge(
    "tickwire_loop_heartbeat_age_seconds",
    "Seconds since the process's main loop last completed an iteration (idle polls and retry waits count)",
    ["loop"],
)
LOOP_LIMIT = Gauge(
    "tickwire_loop_heartbeat_limit_seconds",
    "Heartbeat age past which the loop counts as wedged and /healthz fails (stall limit + current grace)",
    ["loop"],
)


class Heartbeat:
    """When a main loop last ran: ``beat()`` each iteration, ``check`` as its liveness check.

    ``limit_s`` must be above the loop's longest ordinary blocking call. A loop about to enter a longer
    call that is bounded by its own timeout (a restore, a transaction commit) passes that timeout as
    ``grace_s``: the next beat is due ``limit_s + grace_s`` later, so the limit can stay short.
    """

    def __init__(self, loop: str, limit_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if limit_s <= 0:
            raise ValueError(f"heartbeat limit must be positive, not {limit_s}")
        self.loop = loop
        self.limit_s = limit_s
        self._clock = clock
        self._last = clock()
        self._grace = 0.0
        _owners[loop] = self
        LOOP_AGE.labels(loop).set_function(self.age)
        LOOP_LIMIT.labels(loop).set_function(self.limit)

    def beat(self, grace_s: float = 0.0) -> None:
        # Two attribute stores: cheap enough for every poll of a hot loop. The stamp goes first: a check
        # racing with a beat then sees a fresh stamp, which passes whatever the grace.
        self._last = self._clock()
        self._grace = grace_s

    def age(self) -> float:
        return max(0.0, self._clock() - self._last)

    def limit(self) -> float:
        return self.limit_s + self._grace

    def check(self) -> str | None:
        """Liveness: None while the loop runs, else how long it has not."""
        age, limit = self.age(), self.limit()
        if age <= limit:
            return None
        return f"main loop has not run for {age:.1f} s (limit {limit:g} s)"

    def close(self) -> None:
        """The loop ended: drop its gauge (a stopped loop's age would only grow) unless a newer loop of
        the same name owns it by now."""
        if _owners.get(self.loop) is self:
            del _owners[self.loop]
            for gauge in (LOOP_AGE, LOOP_LIMIT):
                with contextlib.suppress(KeyError):
                    gauge.remove(self.loop)


_owners: dict[str, Heartbeat] = {}  # loop name -> the heartbeat its gauge reads


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            ok, checks = HEALTH.report("live")
            body = {"status": "ok" if ok else "failing", "checks": checks}
            self._send(200 if ok else 503, json.dumps(body).encode(), "application/json")
        elif path == "/readyz":
            ok, checks = HEALTH.report("ready")
            ready = {"ready": ok, "checks": checks}
            self._send(200 if ok else 503, json.dumps(ready).encode(), "application/json")
        else:
            self._send(404, b"not found: /metrics, /healthz, /readyz\n", "text/plain")

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return  # scrapes every few seconds: not worth a log line each


_server_lock = threading.Lock()
_server: ThreadingHTTPServer | None = None


def serve(port: int, addr: str = "127.0.0.1") -> int | None:
    """Start the endpoint once per process (``port`` 0 = off); returns the bound port or None."""
    global _server
    with _server_lock:
        if _server is not None:
            return int(_server.server_address[1])
        if port <= 0:
            return None
        _server = ThreadingHTTPServer((addr, port), _Handler)
        _server.daemon_threads = True
        threading.Thread(target=_server.serve_forever, name="httpd", daemon=True).start()
        log.info("metrics and health serving %s", kv(addr=addr, port=port))
        return port
