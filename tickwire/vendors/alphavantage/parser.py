"""Alpha Vantage REST responses -> canonical analytics records (pure).

A raw record is one HTTP response body exactly as received; the request is in the envelope's context
header (``function``, the query parameters in order without ``apikey``, ``http_status``, the poller's
``outcome``). Offline recordings (``tickwire parse`` of ``URL -> T: body`` lines) carry the request in
the stream name instead (``rest.query?function=...``); both are read the same way.

Rules:
- The body decides, never ``outcome``: a body with ``Note``/``Information`` (throttle), ``Error Message``,
  an options answer whose message is not "success" or whose rows are the premium sample (``XXYYZZ``
  contracts), ``Global Quote`` (no canonical record fits a day summary without bid/ask or a trade) and any
  HTTP status >= 400 are control frames, counted in ``state.control`` by kind. A body that is not JSON,
  or JSON of no known shape, is a ``ParseError`` (bad input: the DLQ).
- REALTIME_OPTIONS / HISTORICAL_OPTIONS -> one ``OptionChain`` (possibly empty: the chain is gone), keyed
  by the ``symbol`` parameter, ``ts_event`` = ``ts_recv`` (the API gives no answer time). Values absent
  or empty on the wire are None; call/put -> C/P. Greeks with more than 9 decimals are rounded half-even
  to 1e-9 (decimal arithmetic, never floats).
- NEWS_SENTIMENT -> one ``NewsSentiment`` keyed by ``tickers``; ``time_published`` is exchange-local time
  (US/Eastern, as every Alpha Vantage time) converted to UTC ns.
- RSI, MACD, BBANDS, ATR (any ``Technical Analysis: X`` body) -> one ``IndicatorPoint`` per point not
  emitted before for (symbol, indicator, interval, parameters), oldest first; point times are in the
  body's ``Time Zone`` (date keys: midnight), converted to UTC ns. State: the newest emitted time per
  series, at most ``MAX_SERIES`` series (least recently used dropped). Points before 2000 are skipped.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
import zoneinfo
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import msgspec

from tickwire.contract import jsonlimits
from tickwire.contract.envelope import Envelope
from tickwire.contract.exact import AmountError, decimal_to_units, parse_units
from tickwire.contract.parser import ParseError, ParseOutput, record_base
from tickwire.contract.records import (
    IndicatorPoint,
    NewsArticle,
    NewsSentiment,
    OptionChain,
    OptionContract,
    OptionRight,
    Record,
    TickerSentiment,
)
from tickwire.vendors.alphavantage import wire

SOURCE = "alphavantage"
EXCHANGE_TZ = "US/Eastern"
MAX_SERIES = 10_000
TS_MIN = 946_684_800 * 10**9  # 2000-01-01
# Context keys that are not parameters of an indicator series.
_NOT_PARAMS = frozenset({"function", "symbol", "interval", "datatype", "apikey", "http_status", "outcome"})
_ABSENT = frozenset({"", "None", "none", "null", "-", "N/A"})
_RIGHTS: dict[str, OptionRight] = {"call": "C", "put": "P"}
_NINE = Decimal("1e-9")
_ZONES: dict[str, dt.tzinfo] = {}


@dataclass
class AlphaVantageState:
    # (symbol, indicator, interval, params) -> newest point time emitted (ns); LRU-bounded.
    emitted: OrderedDict[tuple[str, str, str, str], int] = field(default_factory=OrderedDict)
    control: Counter[str] = field(default_factory=Counter)  # non-data answers by kind
    skipped_points: int = 0  # technicals points before 2000


def _zone(name: str) -> dt.tzinfo:
    z = _ZONES.get(name)
    if z is None:
        try:
            z = _ZONES[name] = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name that is a bad path
            raise ParseError(f"unknown time zone {name!r}") from None
    return z


def local_to_ns(text: str, tz: str) -> int:
    """``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM[:SS]`` or ``YYYYMMDDTHHMM[SS]`` local time -> UTC ns."""
    try:
        if "T" in text and "-" not in text:
            fmt = "%Y%m%dT%H%M%S" if len(text) == 15 else "%Y%m%dT%H%M"
            t = dt.datetime.strptime(text, fmt)
        elif len(text) == 10:
            t = dt.datetime.strptime(text, "%Y-%m-%d")
        else:
            t = dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S" if len(text) == 19 else "%Y-%m-%d %H:%M")
    except ValueError:
        raise ParseError(f"bad time {text!r}") from None
    return int(t.replace(tzinfo=_zone(tz)).timestamp()) * 10**9


def _units(text: str | Decimal, what: str) -> int:
    try:
        if isinstance(text, Decimal):
            return decimal_to_units(text)
        try:
            return parse_units(text)
        except AmountError:
            d = Decimal(text)
            if not d.is_finite():
                raise
            return decimal_to_units(d.quantize(_NINE, rounding=ROUND_HALF_EVEN))  # > 9 decimals: round
    except (AmountError, InvalidOperation, ValueError) as exc:
        raise ParseError(f"{what}: bad decimal {text!r}: {exc}") from None


def _opt(text: str | None, what: str) -> int | None:
    return None if text is None or text.strip() in _ABSENT else _units(text, what)


def _date(text: str | None, what: str) -> dt.date | None:
    if text is None or text in _ABSENT:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ParseError(f"{what}: bad date {text!r}") from None


def request(env: Envelope) -> dict[str, str]:
    """The request's context: the envelope's context header, else the query of a recorded stream name."""
    if env.context:
        return env.context_map()
    _, _, query = env.stream.partition("?")
    return dict(urllib.parse.parse_qsl(query, keep_blank_values=True)) if query else {}


class AlphaVantageParser:
    source = SOURCE

    def new_state(self, metadata: Any = None) -> AlphaVantageState:
        return AlphaVantageState()

    def parse(self, payload: bytes, env: Envelope, state: AlphaVantageState) -> ParseOutput:
        ctx = request(env)
        try:
            status = int(ctx.get("http_status", "200"))
        except ValueError:
            status = 0
        if status >= 400 or status == 0:
            return self._control(state, "http_error")
        jsonlimits.check(payload)  # size and nesting bounds before any decoder recursion
        try:
            top = msgspec.json.decode(payload, type=wire.Top)
        except msgspec.DecodeError as exc:
            raise ParseError(f"not a JSON object: {exc}") from None
        if any(k in top for k in wire.THROTTLE_KEYS):
            return self._control(state, "throttle")
        if wire.ERROR_KEY in top:
            return self._control(state, "error")
        if wire.QUOTE_KEY in top:
            return self._control(state, "quote")
        if "data" in top and "endpoint" in top:
            return self._options(payload, env, ctx, state)
        if "feed" in top:
            return self._news(payload, env, ctx)
        tech = next((k for k in top if k.startswith(wire.TECH_PREFIX)), None)
        if tech is not None and wire.META_KEY in top:
            return self._technical(top, tech, env, ctx, state)
        raise ParseError(f"unknown response shape (keys {sorted(top)[:5]})")

    @staticmethod
    def _control(state: AlphaVantageState, kind: str) -> ParseOutput:
        state.control[kind] += 1
        return ParseOutput(control=True)

    @staticmethod
    def _base(env: Envelope, symbol: str, sub_seq: int, ts_event: int) -> dict[str, Any]:
        # asset class equity: the symbol is the underlying / the company
        return record_base(env, symbol, "equity", ts_event, sub_seq=sub_seq, source=SOURCE)

    def _options(
        self, payload: bytes, env: Envelope, ctx: dict[str, str], state: AlphaVantageState
    ) -> ParseOutput:
        try:
            body = msgspec.json.decode(payload, type=wire.OptionsBody)
        except msgspec.ValidationError as exc:
            raise ParseError(f"options body: {exc}") from None
        premium = any(m.lower() in body.message.lower() for m in wire.PREMIUM_MARKERS) or any(
            r.contractID.startswith(wire.PREMIUM_CONTRACT) or r.symbol == wire.PREMIUM_CONTRACT
            for r in body.data
        )
        if premium:
            return self._control(state, "premium_sample")
        if body.message.lower() != "success":
            return self._control(state, "error")
        symbol = ctx.get("symbol") or (body.data[0].symbol if body.data else "")
        if not symbol:
            raise ParseError("options answer without a symbol (no request context, no rows)")
        historical = ctx.get("function") == "HISTORICAL_OPTIONS" or body.endpoint == "Historical Options"
        contracts = tuple(_contract(r) for r in body.data)
        as_of = _date(ctx.get("date"), "date") or (
            contracts[0].quote_date if historical and contracts else None
        )
        chain = OptionChain(
            **self._base(env, symbol, 0, env.ts_recv),
            kind="historical" if historical else "realtime",
            greeks_requested=historical or ctx.get("require_greeks", "").lower() == "true",
            as_of=as_of if historical else None,
            contracts=contracts,
        )
        return ParseOutput(records=[chain])

    def _news(self, payload: bytes, env: Envelope, ctx: dict[str, str]) -> ParseOutput:
        try:
            body = msgspec.json.decode(payload, type=wire.NewsBody)
        except msgspec.ValidationError as exc:
            raise ParseError(f"news body: {exc}") from None
        symbol = ctx.get("tickers", "")
        if not symbol:
            raise ParseError("news answer without the tickers of its request")
        articles = tuple(_article(a) for a in body.feed)
        rec = NewsSentiment(**self._base(env, symbol, 0, env.ts_recv), articles=articles)
        return ParseOutput(records=[rec])

    def _technical(
        self, top: wire.Top, key: str, env: Envelope, ctx: dict[str, str], state: AlphaVantageState
    ) -> ParseOutput:
        try:
            meta = msgspec.json.decode(top[wire.META_KEY], type=wire.Meta)
            points = msgspec.json.decode(top[key], type=wire.Points)
        except msgspec.ValidationError as exc:
            raise ParseError(f"technicals body: {exc}") from None
        indicator = ctx.get("function") or key[len(wire.TECH_PREFIX) :]
        symbol = ctx.get("symbol") or str(_meta(meta, "Symbol") or "")
        interval = ctx.get("interval") or str(_meta(meta, "Interval") or "")
        tz = str(_meta(meta, "Time Zone") or EXCHANGE_TZ)
        if not symbol:
            raise ParseError("technicals answer without a symbol")
        params = {k: v for k, v in ctx.items() if k not in _NOT_PARAMS}
        series = (symbol, indicator, interval, "&".join(f"{k}={v}" for k, v in sorted(params.items())))
        last = state.emitted.get(series, -1)
        timed = sorted((local_to_ns(t, tz), t) for t in points)
        fresh = [(ns, t) for ns, t in timed if ns > last]
        out: list[Record] = []
        for ns, t in fresh:
            if ns < TS_MIN:
                state.skipped_points += 1
                continue
            values = {name: _units(v, f"{indicator} {t} {name}") for name, v in points[t].items()}
            out.append(
                IndicatorPoint(
                    **self._base(env, symbol, len(out), ns),
                    indicator=indicator,
                    interval=interval,
                    params=params,
                    values=values,
                )
            )
        if fresh:
            state.emitted[series] = fresh[-1][0]
        if series in state.emitted:
            state.emitted.move_to_end(series)
        while len(state.emitted) > MAX_SERIES:
            state.emitted.popitem(last=False)
        return ParseOutput(records=out, control=not out)


def _meta(meta: wire.Meta, suffix: str) -> Any:
    """The Meta Data value whose numbered key ends with ``suffix`` ("7: Time Zone" -> "Time Zone")."""
    return next((v for k, v in meta.items() if k.partition(": ")[2] == suffix), None)


def _contract(r: wire.OptionRow) -> OptionContract:
    cid = r.contractID
    right = _RIGHTS.get(r.type.lower())
    expiry = _date(r.expiration, f"{cid} expiration")
    if right is None or expiry is None:
        raise ParseError(f"{cid}: bad type {r.type!r} or expiration {r.expiration!r}")
    return OptionContract(
        contract_id=cid,
        underlying=r.symbol,
        expiry=expiry,
        strike=_units(r.strike, f"{cid} strike"),
        right=right,
        last=_opt(r.last, f"{cid} last"),
        mark=_opt(r.mark, f"{cid} mark"),
        bid=_opt(r.bid, f"{cid} bid"),
        bid_size=_opt(r.bid_size, f"{cid} bid_size"),
        ask=_opt(r.ask, f"{cid} ask"),
        ask_size=_opt(r.ask_size, f"{cid} ask_size"),
        volume=_opt(r.volume, f"{cid} volume"),
        open_interest=_opt(r.open_interest, f"{cid} open_interest"),
        quote_date=_date(r.date, f"{cid} date"),
        implied_volatility=_opt(r.implied_volatility, f"{cid} implied_volatility"),
        delta=_opt(r.delta, f"{cid} delta"),
        gamma=_opt(r.gamma, f"{cid} gamma"),
        theta=_opt(r.theta, f"{cid} theta"),
        vega=_opt(r.vega, f"{cid} vega"),
        rho=_opt(r.rho, f"{cid} rho"),
    )


def _article(a: wire.Article) -> NewsArticle:
    score = a.overall_sentiment_score
    return NewsArticle(
        url=a.url,
        title=a.title,
        time_published=local_to_ns(a.time_published, EXCHANGE_TZ),
        source=a.source,
        source_domain=a.source_domain,
        category=a.category_within_source,
        authors=tuple(a.authors),
        summary=a.summary,
        topics={t.topic: _units(t.relevance_score, f"topic {t.topic}") for t in a.topics},
        overall_score=None if score is None else _units(score, "overall_sentiment_score"),
        overall_label=a.overall_sentiment_label,
        tickers=tuple(
            TickerSentiment(
                ticker=t.ticker,
                relevance=_units(t.relevance_score, f"{t.ticker} relevance"),
                score=_units(t.ticker_sentiment_score, f"{t.ticker} sentiment"),
                label=t.ticker_sentiment_label,
            )
            for t in a.ticker_sentiment
        ),
    )


PARSER = AlphaVantageParser()
