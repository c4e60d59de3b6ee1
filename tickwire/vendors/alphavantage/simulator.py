"""Alpha Vantage REST simulator: ``GET /query?function=…&apikey=…`` in the real shapes, on loopback.

Functions: REALTIME_OPTIONS (``require_greeks=true|false``, ``contract``), HISTORICAL_OPTIONS (``date``),
NEWS_SENTIMENT (``tickers``, ``limit``, ``sort``), RSI, MACD, BBANDS, ATR (``interval``, ``time_period``,
``series_type``, …) and GLOBAL_QUOTE; data from ``sim_data`` (deterministic from the seed and the as-of
time fixed at start). As the real API, every answer is HTTP 200 unless a fault says otherwise:
- per-key accounting: more than ``limit`` answered calls of one key within ``window_s`` (sliding) get the
  real throttle body (``Information``, or ``Note`` with ``throttle_body="note"``);
- bad or missing parameters, an unknown function or symbol: ``{"Error Message": …}``;
- an unentitled key (``unentitled_keys``) on the options endpoints: the premium sample body;
- faults on command (``GET /control/rest_fault?fault=K[&seconds=S][&count=N][&function=F][&symbol=S]
  [&delay=D]``, loopback clients only): ``slow`` (answer after ``delay`` s), ``http_500``, ``malformed``
  (truncated JSON), ``empty_chain`` (options ``data: []``), ``throttle``, ``error``, ``premium``.
  ``GET /control/clear`` removes them.
- the request log: every request with its receive time and what it was answered, ``GET
  /control/requests[?since=N]`` (JSON) or ``requests()``; the key appears only as ``key_id``
  (first 8 hex digits of its SHA-256).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from tickwire.simulators.base import RestAnswer, SimServer, json_answer
from tickwire.vendors.alphavantage import sim_data as d

REST_FAULTS = ("slow", "http_500", "malformed", "empty_chain", "throttle", "error", "premium")
TECHNICALS = ("RSI", "MACD", "BBANDS", "ATR")
FUNCTIONS = ("REALTIME_OPTIONS", "HISTORICAL_OPTIONS", "NEWS_SENTIMENT", "GLOBAL_QUOTE", *TECHNICALS)
_EASTERN = ZoneInfo("America/New_York")
_LOOPBACK = ("127.", "::1", "localhost")


def key_id(apikey: str) -> str:
    return hashlib.sha256(apikey.encode()).hexdigest()[:8]


@dataclass
class RestFault:
    kind: str
    until: float | None  # monotonic deadline, None = until its count is used up
    count: int | None  # remaining matching requests, None = until the deadline
    function: str | None = None
    symbol: str | None = None
    delay: float = 0.0

    def matches(self, function: str, symbol: str, now: float) -> bool:
        if self.until is not None and now >= self.until:
            return False
        if self.count is not None and self.count <= 0:
            return False
        return self.function in (None, function) and self.symbol in (None, symbol)


@dataclass
class Answer:
    status: int
    body: bytes
    outcome: str  # data | empty | throttle | error | premium_sample | malformed | http_error
    delay: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class BadRequest(ValueError):
    pass


def _body(obj: Any) -> bytes:
    return json.dumps(obj, indent=4).encode()


def _error(function: str) -> bytes:
    return _body(
        {
            "Error Message": "Invalid API call. Please retry or visit the documentation "
            f"(https://www.alphavantage.co/documentation/) for {function}."
        }
    )


class AlphaVantageSimulator(SimServer):
    name = "alphavantage"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int = 7,
        limit: int = 600,
        window_s: float = 60.0,
        unentitled_keys: tuple[str, ...] = (),
        throttle_body: str = "information",
        asof: dt.datetime | None = None,
        max_log: int = 200_000,
        record_frames: bool = True,
        **_: Any,
    ) -> None:
        super().__init__(host, port, record_frames=record_frames)
        self.seed, self.limit, self.window_s = seed, limit, window_s
        self.unentitled = frozenset(unentitled_keys)
        self.throttle_body = throttle_body
        now = asof or dt.datetime.now(_EASTERN)
        self.asof = now.replace(tzinfo=None, microsecond=0)  # exchange-local time, as the API writes it
        self.rest_faults: list[RestFault] = []
        self._log: list[dict[str, Any]] = []
        self._log_base = 0  # entries dropped from the front (a long run keeps the last ``max_log``)
        self.max_log = max_log
        self._calls: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------- inspection
    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """The request log from entry ``since`` (0-based, counting every request since start) on: n,
        t_ns, t_mono, key_id, function, params (request parameters without the key), status, answer."""
        with self._lock:
            return [dict(e) for e in self._log[max(0, since - self._log_base) :]]

    def add_fault(self, kind: str, seconds: float = 0.0, count: int = 0, **where: Any) -> None:
        """Thread-safe: answer matching requests with ``kind`` for ``seconds`` and/or ``count`` requests."""
        if kind not in REST_FAULTS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {REST_FAULTS}")
        if seconds <= 0 and count <= 0:
            raise ValueError("a fault needs seconds > 0 or count > 0")
        until = time.monotonic() + seconds if seconds > 0 else None
        fault = RestFault(
            kind,
            until,
            count if count > 0 else None,
            where.get("function") or None,
            where.get("symbol") or None,
            float(where.get("delay") or 0.0),
        )
        with self._lock:
            self.rest_faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self.rest_faults.clear()
        super().clear_faults()

    # ------------------------------------------------------------ answering
    def answer(self, query: dict[str, str], now: float | None = None) -> Answer:
        """The answer to one ``/query`` request, logged (thread-safe)."""
        now = time.monotonic() if now is None else now
        t_ns = time.time_ns()
        function = query.get("function", "")
        symbol = query.get("symbol") or query.get("tickers") or ""
        apikey = query.get("apikey", "")
        with self._lock:
            faults = [f for f in self.rest_faults if f.matches(function, symbol, now)]
            for f in faults:
                if f.count is not None:
                    f.count -= 1
            throttled = bool(apikey) and self._over_limit(apikey, now)
        delay = sum(f.delay for f in faults if f.kind == "slow")
        kinds = {f.kind for f in faults}
        ans = self._answer(query, function, apikey, kinds, throttled)
        ans.delay = delay
        entry = {
            "t_ns": t_ns,
            "t_mono": now,
            "key_id": key_id(apikey) if apikey else "",
            "function": function,
            "params": {k: v for k, v in query.items() if k != "apikey"},
            "status": ans.status,
            "answer": ans.outcome,
        }
        with self._lock:
            entry["n"] = self._log_base + len(self._log)
            self._log.append(entry)
            if len(self._log) > self.max_log:
                drop = len(self._log) - self.max_log // 2
                del self._log[:drop]
                self._log_base += drop
        return ans

    def _over_limit(self, apikey: str, now: float) -> bool:
        """Sliding-window accounting of answered calls per key (throttled calls are not counted)."""
        if self.limit <= 0:
            return False
        calls = self._calls.setdefault(apikey, deque())
        while calls and calls[0] <= now - self.window_s:
            calls.popleft()
        if len(calls) >= self.limit:
            return True
        calls.append(now)
        return False

    def _throttle(self) -> Answer:
        if self.throttle_body == "note":
            return Answer(200, _body({"Note": d.NOTE_BODY}), "throttle")
        return Answer(200, _body({"Information": d.INFORMATION_BODY.format(limit=self.limit)}), "throttle")

    def _answer(
        self, q: dict[str, str], function: str, apikey: str, faults: set[str], throttled: bool
    ) -> Answer:
        if "http_500" in faults:
            return Answer(500, b'{"error": "internal server error"}', "http_error")
        if "malformed" in faults:
            return Answer(200, b'{\n    "Meta Data": {\n        "1: Symbol": ', "malformed")
        if throttled or "throttle" in faults:
            return self._throttle()
        if not apikey:
            msg = "the parameter apikey is invalid or missing. Please claim your free API key on "
            return Answer(
                200,
                _body({"Error Message": msg + "(https://www.alphavantage.co/support/#api-key)."}),
                "error",
            )
        if "error" in faults:
            return Answer(200, _error(function), "error")
        if function not in FUNCTIONS:
            return Answer(
                200, _body({"Error Message": f"This API function ({function}) does not exist."}), "error"
            )
        premium = "premium" in faults or apikey in self.unentitled
        if premium and function in ("REALTIME_OPTIONS", "HISTORICAL_OPTIONS"):
            return Answer(200, _body(d.premium_sample()), "premium_sample")
        try:
            body = self._data(function, q, empty="empty_chain" in faults)
        except BadRequest:
            return Answer(200, _error(function), "error")
        rows = body.get("data")
        return Answer(200, _body(body), "empty" if rows == [] else "data")

    def _data(self, function: str, q: dict[str, str], *, empty: bool) -> d.Body:
        if function == "NEWS_SENTIMENT":
            limit = _int(q.get("limit", "50"), 1, 1000)
            if q.get("sort", "LATEST") not in ("LATEST", "EARLIEST", "RELEVANCE"):
                raise BadRequest("sort")
            return d.news_sentiment(self.seed, q.get("tickers", ""), self.asof, limit)
        symbol = q.get("symbol", "")
        if not symbol or (symbol.startswith(d.UNKNOWN_PREFIX) and function != "GLOBAL_QUOTE"):
            raise BadRequest("symbol")
        if q.get("datatype", "json") != "json":
            raise BadRequest("datatype")
        if function == "GLOBAL_QUOTE":
            return d.global_quote(self.seed, symbol, self.asof.date())
        if function == "REALTIME_OPTIONS":
            greeks = q.get("require_greeks", "false")
            if greeks not in ("true", "false"):
                raise BadRequest("require_greeks")
            body = d.realtime_options(
                self.seed, symbol, self.asof.date(), greeks=greeks == "true", empty=empty
            )
            if "contract" in q:
                body["data"] = [r for r in body["data"] if r["contractID"] == q["contract"]]
            return body
        if function == "HISTORICAL_OPTIONS":
            return d.historical_options(self.seed, symbol, self._date(q.get("date")), empty=empty)
        return d.technical(self.seed, function, self._tech_params(function, q), self.asof)

    def _date(self, text: str | None) -> dt.date:
        if text is None:
            day = self.asof.date() - dt.timedelta(days=1)
            while day.weekday() >= 5:
                day -= dt.timedelta(days=1)
            return day
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise BadRequest("date") from None
        if not dt.date(2008, 1, 1) <= day <= self.asof.date():
            raise BadRequest("date")
        return day

    def _tech_params(self, function: str, q: dict[str, str]) -> dict[str, str]:
        p = {"symbol": q["symbol"], "interval": q.get("interval", "")}
        if p["interval"] not in d.INTERVALS:
            raise BadRequest("interval")
        if function in ("RSI", "BBANDS", "ATR"):
            p["time_period"] = str(_int(q.get("time_period", ""), 1, 100_000))
        if function in ("RSI", "MACD", "BBANDS"):
            if q.get("series_type") not in d.SERIES:
                raise BadRequest("series_type")
            p["series_type"] = q["series_type"]
        for name in ("fastperiod", "slowperiod", "signalperiod", "nbdevup", "nbdevdn"):
            if name in q:
                p[name] = str(_int(q[name], 1, 100_000))
        if "matype" in q:
            p["matype"] = str(_int(q["matype"], 0, 8))
        return p

    # -------------------------------------------------------------- serving
    async def _process_request(  # type: ignore[override]
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path.startswith("/control/") and not self.control_token:
            # Without a control token (the harness then checks the bearer), loopback clients only.
            peer = str((connection.remote_address or ("",))[0])
            if not peer.startswith(_LOOPBACK):
                return connection.respond(403, "control endpoint: loopback clients only\n")
        if parts.path == "/query":
            # One value per name, first wins (the base harness keeps the last); answered here so a slow
            # fault delays this response only.
            query: dict[str, str] = {}
            for k, v in parse_qsl(parts.query, keep_blank_values=True):
                query.setdefault(k, v)
            ans = self.answer(query)
            if ans.delay > 0:
                await asyncio.sleep(ans.delay)
            resp = connection.respond(ans.status, "")
            resp.body = ans.body
            resp.headers = Headers(
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(ans.body))),
                    ("Connection", "close"),
                ]
            )
            return resp
        return super()._process_request(connection, request)

    def _control(self, path: str, q: dict[str, str]) -> RestAnswer:
        if path == "/control/rest_fault":
            try:
                where = {k: q[k] for k in ("function", "symbol", "delay") if k in q}
                self.add_fault(
                    q.get("fault", ""), float(q.get("seconds", 0)), int(q.get("count", 0)), **where
                )
            except ValueError as exc:
                return json_answer({"ok": False, "error": str(exc)}, 400)
            return json_answer({"ok": True})
        if path == "/control/requests":
            return json_answer(self.requests(int(q.get("since", 0))))
        return super()._control(path, q)

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        with self._lock:
            out["requests"] = self._log_base + len(self._log)
            out["rest_faults"] = [f.kind for f in self.rest_faults]
        return out


def _int(text: str, lo: int, hi: int) -> int:
    try:
        n = int(text)
    except ValueError:
        raise BadRequest(text) from None
    if not lo <= n <= hi:
        raise BadRequest(text)
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=600, help="answered calls per key per window (0 = no limit)")
    p.add_argument("--window", type=float, default=60.0, help="accounting window, seconds")
    p.add_argument("--unentitled-keys", nargs="*", default=(), help="keys that get the premium sample body")
    p.add_argument("--throttle-body", choices=("information", "note"), default="information")


def build(args: argparse.Namespace, common: dict[str, Any]) -> AlphaVantageSimulator:
    if args.mode == "replay":
        raise SystemExit("alphavantage: replay mode needs recorded responses; none are available")
    return AlphaVantageSimulator(
        args.host,
        args.port,
        limit=args.limit,
        window_s=args.window,
        unentitled_keys=tuple(args.unentitled_keys),
        throttle_body=args.throttle_body,
        **{k: v for k, v in common.items() if k in ("seed", "record_frames")},
    )
