"""Strike manager: the option contracts of the options connection follow the underlying's price.

There is no prefix wildcard (``T.O:SPY*`` is not a Massive form), so exact contract tickers are
subscribed. The window: for the nearest ``expiries`` expiries (0DTE included when listed), the listed
strikes within +/- ``strike_count`` strikes of the underlying's price (mode ``count``) or within
+/- ``strike_pct`` % of it (mode ``pct``), calls and puts; at most ``max_contracts`` (the vendor caps
option quotes at 1,000 contracts per connection), nearest strikes kept first.

Hysteresis: the window is centred on the price of the last re-centre; it moves only once the price is
``recenter_strikes`` strike steps (the grid spacing at the centre) away from that centre, so a price
oscillating at a boundary causes no churn. A re-centre replaces the whole set (new contracts
subscribed, dropped ones unsubscribed) and is logged and counted.

``StrikeService`` runs it: the strike grid from the contracts listing (Massive's REST reference endpoint,
paged by ``next_url``), the underlying's trades from the stocks stream in ``polygon.raw``, and each new set
written as the FULL set to ``control.subscriptions`` (``polygon-options:<channel>``), which the options
producer follows live (and ``tickwire subscriptions list`` shows); without the control topic it calls the
runner's ``set_desired`` directly.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import Counter, Gauge

from tickwire.contract.codec import Codec, Subscription
from tickwire.contract.control import CONTROL_TOPIC, control_key
from tickwire.contract.envelope import Envelope, EnvelopeError
from tickwire.contract.exact import ONE
from tickwire.contract.kafka_security import client_conf
from tickwire.contract.parser import ParseError
from tickwire.contract.records import Trade
from tickwire.contract.symbols import SymbolError, parse_option
from tickwire.logs import kv
from tickwire.vendors.polygon.adapter import control_vendor
from tickwire.vendors.polygon.parser import PARSER
from tickwire.vendors.polygon.settings import PolygonSettings

log = logging.getLogger(__name__)

RECENTRES = Counter("tickwire_strikes_recentres", "Strike window re-centres", ["underlying"])
CHANGES = Counter("tickwire_strikes_changes", "Option contracts added/removed", ["underlying", "op"])
CONTRACTS = Gauge("tickwire_strikes_contracts", "Option contracts in the strike window", ["underlying"])


@dataclass(frozen=True, slots=True)
class Contract:
    ticker: str  # O:SPY251216C00676000
    expiry: dt.date
    right: str
    strike: int  # 1e-9 units


def contract(ticker: str) -> Contract:
    o = parse_option(ticker)
    return Contract(ticker, o.expiry, o.right, o.strike)


@dataclass(frozen=True, slots=True)
class WindowRule:
    mode: str = "count"  # count | pct
    strike_count: int = 5
    strike_pct: Decimal = Decimal(2)
    expiries: int = 2
    recenter_strikes: Decimal = Decimal(2)
    max_contracts: int = 1000

    @classmethod
    def of(cls, s: PolygonSettings) -> WindowRule:
        return cls(
            s.strike_mode, s.strike_count, s.strike_pct, s.expiries, s.recenter_strikes, s.max_contracts
        )


def nearest_expiries(grid: list[Contract], k: int, today: dt.date) -> list[dt.date]:
    return sorted({c.expiry for c in grid if c.expiry >= today})[:k]


def strike_step(grid: list[Contract], price: int) -> int:
    """The grid spacing at ``price`` (listed strikes around it); ONE when unknown."""
    strikes = sorted({c.strike for c in grid})
    if len(strikes) < 2:
        return ONE
    gaps = [b - a for a, b in itertools.pairwise(strikes)]
    i = min(range(len(gaps)), key=lambda j: abs(strikes[j] - price))
    return gaps[i]


def window(grid: list[Contract], price: int, rule: WindowRule, today: dt.date) -> frozenset[str]:
    """The contract tickers of the window centred on ``price`` (1e-9 units)."""
    chosen: list[Contract] = []
    for expiry in nearest_expiries(grid, rule.expiries, today):
        row = [c for c in grid if c.expiry == expiry]
        strikes = sorted({c.strike for c in row})
        if rule.mode == "pct":
            span = int(price * rule.strike_pct / 100)  # exact: Decimal, never a float
            keep = {k for k in strikes if abs(k - price) <= span}
        else:
            c = min(range(len(strikes)), key=lambda j: (abs(strikes[j] - price), strikes[j]))
            keep = set(strikes[max(0, c - rule.strike_count) : c + rule.strike_count + 1])
        chosen += [c for c in row if c.strike in keep]
    chosen.sort(key=lambda c: (abs(c.strike - price), c.expiry, c.strike, c.right))
    return frozenset(c.ticker for c in chosen[: rule.max_contracts])


@dataclass(frozen=True, slots=True)
class Change:
    centre: int
    current: frozenset[str]
    added: frozenset[str]
    removed: frozenset[str]


class StrikeManager:
    """Pure state: the grid, the centre of the last re-centre and the current set."""

    def __init__(
        self, underlying: str, rule: WindowRule, today: Callable[[], dt.date] = dt.date.today
    ) -> None:
        self.underlying, self.rule, self._today = underlying, rule, today
        self.grid: list[Contract] = []
        self.centre: int | None = None
        self.current: frozenset[str] = frozenset()
        self.recentres = 0

    def set_grid(self, grid: list[Contract]) -> Change | None:
        """A new listing: recompute the window at the same centre (expiries roll, strikes get listed)."""
        self.grid = [c for c in grid if parse_option(c.ticker).underlying == self.underlying]
        return None if self.centre is None else self._move(self.centre)

    def on_price(self, price: int) -> Change | None:
        if not self.grid:
            return None
        if self.centre is not None:
            threshold = int(self.rule.recenter_strikes * strike_step(self.grid, self.centre))  # Decimal
            if abs(price - self.centre) < threshold:
                return None  # inside the hysteresis band: no churn
        return self._move(price)

    def _move(self, centre: int) -> Change | None:
        new = window(self.grid, centre, self.rule, self._today())
        self.centre = centre
        if new == self.current:
            return None
        change = Change(centre, new, new - self.current, self.current - new)
        self.current = new
        self.recentres += 1
        return change


class _ContractRow(msgspec.Struct):
    ticker: str


class _ContractPage(msgspec.Struct):
    results: list[_ContractRow] = []
    next_url: str | None = None


_PAGE = msgspec.json.Decoder(_ContractPage)


def fetch_contracts(
    url: str,
    underlying: str,
    api_key: str,
    today: dt.date,
    get: Callable[[str, float], bytes],
    timeout: float,
) -> list[Contract]:
    """Every listed, unexpired contract of ``underlying`` (all pages). The key is never logged."""
    query = {"underlying_ticker": underlying, "expiration_date.gte": today.isoformat(), "limit": "1000"}
    nxt: str | None = f"{url}?{urllib.parse.urlencode(query)}"
    out: list[Contract] = []
    pages = 0
    while nxt:
        sep = "&" if "?" in nxt else "?"
        page = _PAGE.decode(get(f"{nxt}{sep}apiKey={urllib.parse.quote(api_key)}", timeout))
        out += [contract(r.ticker) for r in page.results]
        nxt, pages = page.next_url, pages + 1
    log.info("contracts listed %s", kv(underlying=underlying, contracts=len(out), pages=pages, url=url))
    return out


Sink = Callable[[str, frozenset[str]], None]


def http_get(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body: bytes = resp.read()
        return body


class StrikeService:
    """Thread: contracts listing + underlying trades from ``polygon.raw`` -> the option set, via ``sink``."""

    def __init__(
        self, settings: PolygonSettings, sink: Sink, *, get: Callable[[str, float], bytes] | None = None
    ) -> None:
        self.s = settings
        self.sink = sink
        self._get = get or http_get
        self.manager = StrikeManager(settings.underlying, WindowRule.of(settings))
        self.last_price: int | None = None
        self.prices_seen = 0
        self._last_ts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="strikes", daemon=True)

    @classmethod
    def for_runner(cls, runner: Any) -> StrikeService:
        s: PolygonSettings = runner.s
        if s.subscriptions_live:
            return cls(s, ControlWriter(s, runner.producer).write)
        return cls(s, runner.set_desired)

    def start(self) -> StrikeService:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        key = self.s.api_key.get_secret_value() if self.s.api_key else ""
        next_listing = next_assign = 0.0
        conf = client_conf(self.s.kafka_bootstrap_servers) | {
            "group.id": f"tw-strikes-{time.time_ns()}",
        }
        consumer = Consumer({**conf, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        assigned = 0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_listing:
                    try:
                        grid = fetch_contracts(
                            self.s.contracts_url, self.s.underlying, key, dt.date.today(), self._get, 15.0
                        )
                        self._apply(self.manager.set_grid(grid))
                        next_listing = now + self.s.contracts_refresh_s
                    except Exception as exc:
                        log.warning("contracts listing failed %s", kv(error=repr(exc)))
                        next_listing = now + 5.0
                if now >= next_assign:  # the raw topic may not exist yet, or gain partitions
                    assigned = self._assign(consumer, assigned)
                    next_assign = now + (1.0 if assigned == 0 else 30.0)
                if not assigned:
                    self._stop.wait(0.2)
                    continue
                price = self._price(consumer.consume(500, 0.2))
                if price is not None:
                    self._apply(self.manager.on_price(price))
        finally:
            consumer.close()

    def _assign(self, c: Consumer, assigned: int) -> int:
        """Assign every partition of the raw topic from its recent past (which holds the last price)."""
        topic = self.s.topic("polygon.raw")
        try:
            md = c.list_topics(topic, timeout=5).topics.get(topic)
        except Exception as exc:
            log.warning("raw topic metadata failed %s", kv(topic=topic, error=repr(exc)))
            return assigned
        if md is None or md.error is not None or not md.partitions:
            return 0
        if len(md.partitions) == assigned:
            return assigned
        parts = []
        for p in sorted(md.partitions):
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            parts.append(TopicPartition(topic, p, max(lo, hi - 200)))
        c.assign(parts)
        log.info("following underlying trades %s", kv(topic=topic, partitions=len(parts)))
        return len(parts)

    def _price(self, msgs: list[Any]) -> int | None:
        newest: int | None = None
        for m in msgs:
            if m.error():
                continue
            try:
                env = Envelope.from_headers(m.headers())
                if env.stream != "stocks":
                    continue
                out = PARSER.parse(m.value(), env, PARSER.new_state())
            except (EnvelopeError, ParseError, SymbolError):
                continue
            for r in out.records:
                if isinstance(r, Trade) and r.symbol == self.s.underlying and r.ts_event >= self._last_ts:
                    self._last_ts, newest = r.ts_event, r.price
        if newest is not None:
            self.last_price = newest
            self.prices_seen += 1
        return newest

    def _apply(self, change: Change | None) -> None:
        if change is None:
            return
        u = self.s.underlying
        RECENTRES.labels(u).inc()
        CHANGES.labels(u, "add").inc(len(change.added))
        CHANGES.labels(u, "remove").inc(len(change.removed))
        CONTRACTS.labels(u).set(len(change.current))
        log.info(
            "strike window re-centred %s",
            kv(
                underlying=u,
                centre=change.centre / ONE,
                contracts=len(change.current),
                added=len(change.added),
                removed=len(change.removed),
            ),
        )
        for ch in self.s.option_channels:
            self.sink(ch, change.current)


class ControlWriter:
    """Writes FULL option sets to the control topic (the options producer follows it)."""

    def __init__(self, settings: PolygonSettings, producer: Any) -> None:
        self.s, self.producer, self.codec = settings, producer, Codec(settings.schema_registry_url)
        self.vendor = control_vendor("options")

    def write(self, channel: str, symbols: frozenset[str]) -> None:
        sub = Subscription(
            vendor=self.vendor,
            stream_type=channel,
            symbols=tuple(sorted(symbols)),
            updated_ts=time.time_ns(),
            updated_by=f"strikes.{self.s.underlying}",
        )
        key = control_key(self.vendor, channel).encode()
        self.producer.produce(self.s.topic(CONTROL_TOPIC), self.codec.encode(sub), key, [], stream="control")
        self.producer.flush(10)
