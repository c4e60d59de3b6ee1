"""The Alpha Vantage simulator's data: deterministic bodies from (seed, symbol, parameters, as-of date).

Pure functions returning the JSON objects the simulator serves, so a test computes the expected values
from the same seed without going through HTTP. Every value is a JSON string, as on the real API, except
the sentiment feed's ``overall_sentiment_score`` (a JSON number). Prices and greeks are built from
integers (no binary floats), then written as fixed decimal text.
"""

from __future__ import annotations

import datetime as dt
import random
import zlib
from typing import Any

from tickwire.simulators.market import fmt_fixed

Body = dict[str, Any]
ETFS = frozenset({"SPY", "QQQ", "IWM", "VXX"})
# Symbols the simulator treats as unknown: GLOBAL_QUOTE answers ``{"Global Quote": {}}``, others an error.
UNKNOWN_PREFIX = "ZZ"
TIME_ZONE = "US/Eastern"
INTRADAY = ("1min", "5min", "15min", "30min", "60min")
INTERVALS = (*INTRADAY, "daily", "weekly", "monthly")
SERIES = ("close", "open", "high", "low")
TECH_POINTS = 30
STRIKES_EACH_SIDE = 4
EXPIRIES = 2

INDICATORS: dict[str, str] = {
    "RSI": "Relative Strength Index (RSI)",
    "MACD": "Moving Average Convergence/Divergence (MACD)",
    "BBANDS": "Bollinger Bands (BBANDS)",
    "ATR": "Average True Range (ATR)",
}

PREMIUM_MESSAGE = (
    "This is a premium endpoint. ***THE SAMPLE DATA SCHEMA BELOW IS ARTIFICIAL AND FOR DEMO PURPOSES "
    "ONLY*** You may subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to "
    "instantly unlock all premium endpoints"
)
NOTE_BODY = (
    "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute and 500 "
    "calls per day. Please visit https://www.alphavantage.co/premium/ if you would like to target a "
    "higher API call frequency."
)
INFORMATION_BODY = (
    "Thank you for using Alpha Vantage! You have exceeded the rate limit per minute for your plan, {limit} "
    "requests per minute. Please consider optimizing your API call frequency."
)


def rng(seed: int, *parts: str) -> random.Random:
    """A generator that depends only on the seed and the parts (stable across processes)."""
    return random.Random(zlib.crc32("|".join((str(seed), *parts)).encode()))


def price_cents(seed: int, symbol: str) -> int:
    """The underlying's price in cents (20.00 .. 600.00)."""
    return rng(seed, "price", symbol).randrange(2000, 60000)


def strike_step_cents(price: int) -> int:
    return 100 if price < 10000 else 500 if price < 30000 else 1000


def expirations(asof: dt.date) -> list[dt.date]:
    """The next ``EXPIRIES`` Fridays after ``asof``."""
    first = asof + dt.timedelta(days=(4 - asof.weekday()) % 7 or 7)
    return [first + dt.timedelta(weeks=k) for k in range(EXPIRIES)]


def _d(units: int, decimals: int) -> str:
    return fmt_fixed(units, decimals)


def has_greeks(symbol: str, contract_id: str) -> bool:
    """Some contracts come without greeks even when asked for (the ``missing_greeks`` case)."""
    return zlib.crc32(f"{symbol}|{contract_id}".encode()) % 7 != 0


def option_rows(
    seed: int, symbol: str, asof: dt.date, *, greeks: bool, all_greeks: bool = False
) -> list[Body]:
    """The chain, sorted by expiration then strike (calls before puts at a strike)."""
    spot = price_cents(seed, symbol)
    step = strike_step_cents(spot)
    atm = spot // step * step
    rows: list[Body] = []
    for exp in expirations(asof):
        days = (exp - asof).days
        for k in range(-STRIKES_EACH_SIDE, STRIKES_EACH_SIDE + 1):
            strike = atm + k * step
            for right in ("call", "put"):
                rows.append(_row(seed, symbol, asof, exp, days, spot, strike, right, greeks, all_greeks))
    return rows


def _row(
    seed: int,
    symbol: str,
    asof: dt.date,
    exp: dt.date,
    days: int,
    spot: int,
    strike: int,
    right: str,
    greeks: bool,
    all_greeks: bool,
) -> Body:
    cid = f"{symbol}{exp:%y%m%d}{right[0].upper()}{strike * 10:08d}"
    r = rng(seed, "opt", cid, asof.isoformat())
    intrinsic = max(0, spot - strike) if right == "call" else max(0, strike - spot)
    mark = intrinsic + r.randrange(5, 60) * days  # cents
    half = r.randrange(1, 8)
    row: Body = {
        "contractID": cid,
        "symbol": symbol,
        "expiration": exp.isoformat(),
        "strike": _d(strike, 2),
        "type": right,
        "last": _d(mark + r.randrange(-half, half + 1), 2),
        "mark": _d(mark, 2),
        "bid": _d(max(1, mark - half), 2),
        "bid_size": str(r.randrange(1, 500)),
        "ask": _d(mark + half, 2),
        "ask_size": str(r.randrange(1, 500)),
        "volume": str(r.randrange(0, 20000)),
        "open_interest": str(r.randrange(0, 90000)),
        "date": asof.isoformat(),
    }
    if greeks and (all_greeks or has_greeks(symbol, cid)):
        moneyness = (spot - strike) * 100_000 // max(1, spot)  # 1e-5 units, signed
        delta = max(-99_000, min(99_000, 50_000 + moneyness * 4))
        if right == "put":
            delta -= 100_000
        row |= {
            "implied_volatility": _d(r.randrange(12_000, 95_000), 5),
            "delta": _d(delta, 5),
            "gamma": _d(r.randrange(100, 9_000), 5),
            "theta": _d(-r.randrange(500, 90_000), 5),
            "vega": _d(r.randrange(1_000, 60_000), 5),
            "rho": _d(r.randrange(100, 20_000) * (1 if right == "call" else -1), 5),
        }
    return row


def realtime_options(seed: int, symbol: str, asof: dt.date, *, greeks: bool, empty: bool = False) -> Body:
    rows = [] if empty else option_rows(seed, symbol, asof, greeks=greeks)
    return {"endpoint": "Realtime Options", "message": "success", "data": rows}


def historical_options(seed: int, symbol: str, date: dt.date, *, empty: bool = False) -> Body:
    rows = [] if empty else option_rows(seed, symbol, date, greeks=True, all_greeks=True)
    return {"endpoint": "Historical Options", "message": "success", "data": rows}


def premium_sample() -> Body:
    """What an unentitled key gets from a premium endpoint: HTTP 200 and artificial rows."""
    rows = []
    for right in ("call", "put"):
        rows.append(
            {
                "contractID": f"XXYYZZ999999{right[0].upper()}00020000",
                "symbol": "XXYYZZ",
                "expiration": "2099-12-31",
                "strike": "20.00",
                "type": right,
                "last": "0.00",
                "mark": "0.00",
                "bid": "0.00",
                "bid_size": "0",
                "ask": "0.00",
                "ask_size": "0",
                "volume": "0",
                "open_interest": "0",
                "date": "2099-12-31",
            }
        )
    return {"endpoint": "Realtime Options", "message": PREMIUM_MESSAGE, "data": rows}


def _label(score: int) -> str:
    """Alpha Vantage's sentiment buckets, on a score in 1e-6 units."""
    if score <= -350_000:
        return "Bearish"
    if score <= -150_000:
        return "Somewhat-Bearish"
    if score < 150_000:
        return "Neutral"
    if score < 350_000:
        return "Somewhat-Bullish"
    return "Bullish"


def news_sentiment(seed: int, tickers: str, asof: dt.datetime, limit: int = 50) -> Body:
    """A sentiment feed of up to ``min(limit, 8)`` articles, newest first."""
    names = [t for t in tickers.split(",") if t]
    r = rng(seed, "news", tickers, asof.strftime("%Y%m%d"))
    feed: list[Body] = []
    for i in range(min(limit, 8)):
        published = asof - dt.timedelta(minutes=37 * i + r.randrange(0, 30))
        overall = r.randrange(-600_000, 700_000)
        ticker_rows = []
        for t in names:
            score = r.randrange(-800_000, 800_000)
            ticker_rows.append(
                {
                    "ticker": t,
                    "relevance_score": _d(r.randrange(10_000, 1_000_000), 6),
                    "ticker_sentiment_score": _d(score, 6),
                    "ticker_sentiment_label": _label(score),
                }
            )
        source = r.choice(("Benzinga", "Reuters", "Motley Fool", "Zacks Commentary"))
        feed.append(
            {
                "title": f"{names[0] if names else 'Market'} story {i + 1}",
                "url": f"https://news.example.com/{seed}/{i}",
                "time_published": published.strftime("%Y%m%dT%H%M%S"),
                "authors": [f"Author {r.randrange(1, 20)}"],
                "summary": f"Summary of story {i + 1}.",
                "banner_image": None if i % 3 == 2 else f"https://img.example.com/{i}.jpg",
                "source": source,
                "category_within_source": "News",
                "source_domain": source.lower().replace(" ", "") + ".com",
                "topics": [{"topic": "Earnings", "relevance_score": _d(r.randrange(0, 1_000_000), 6)}],
                "overall_sentiment_score": overall / 1_000_000,
                "overall_sentiment_label": _label(overall),
                "ticker_sentiment": ticker_rows,
            }
        )
    return {
        "items": str(len(feed)),
        "sentiment_score_definition": (
            "x <= -0.35: Bearish; -0.35 < x <= -0.15: Somewhat-Bearish; -0.15 < x < 0.15: Neutral; "
            "0.15 <= x < 0.35: Somewhat_Bullish; x >= 0.35: Bullish"
        ),
        "relevance_score_definition": "0 < x <= 1, with a higher score indicating higher relevance.",
        "feed": feed,
    }


def _stamps(asof: dt.datetime, interval: str) -> list[str]:
    """Point times, newest first: dates for daily and longer, ``YYYY-MM-DD HH:MM`` intraday."""
    if interval in INTRADAY:
        step = dt.timedelta(minutes=int(interval.removesuffix("min")))
        last = asof.replace(second=0, microsecond=0)
        return [(last - k * step).strftime("%Y-%m-%d %H:%M") for k in range(TECH_POINTS)]
    days = {"daily": 1, "weekly": 7, "monthly": 30}[interval]
    return [(asof.date() - dt.timedelta(days=k * days)).isoformat() for k in range(TECH_POINTS)]


def technical(seed: int, function: str, params: dict[str, str], asof: dt.datetime) -> Body:
    """RSI, MACD, BBANDS or ATR for validated ``params`` (symbol, interval, time_period, series_type, ...)."""
    symbol, interval = params["symbol"], params["interval"]
    stamps = _stamps(asof, interval)
    r = rng(seed, "tech", function, symbol, interval, params.get("time_period", ""), stamps[0])
    spot = price_cents(seed, symbol) * 100  # 1e-4 units
    meta: Body = {
        "1: Symbol": symbol,
        "2: Indicator": INDICATORS[function],
        "3: Last Refreshed": stamps[0],
        "4: Interval": interval,
    }
    points: Body = {}
    for ts in stamps:
        if function == "RSI":
            points[ts] = {"RSI": _d(r.randrange(150_000, 850_000), 4)}
        elif function == "ATR":
            points[ts] = {"ATR": _d(spot * r.randrange(5, 40) // 1000, 4)}
        elif function == "MACD":
            macd, sig = r.randrange(-60_000, 60_000), r.randrange(-60_000, 60_000)
            points[ts] = {"MACD": _d(macd, 4), "MACD_Hist": _d(macd - sig, 4), "MACD_Signal": _d(sig, 4)}
        else:
            mid, width = spot + r.randrange(-50_000, 50_000), spot * r.randrange(10, 60) // 1000
            points[ts] = {
                "Real Upper Band": _d(mid + width, 4),
                "Real Lower Band": _d(mid - width, 4),
                "Real Middle Band": _d(mid, 4),
            }
    if function == "RSI":
        meta |= {"5: Time Period": int(params["time_period"]), "6: Series Type": params["series_type"]}
        meta["7: Time Zone"] = TIME_ZONE
    elif function == "ATR":
        meta |= {"5: Time Period": int(params["time_period"]), "6: Time Zone": TIME_ZONE}
    elif function == "MACD":
        meta |= {
            "5.1: Fast Period": int(params.get("fastperiod", "12")),
            "5.2: Slow Period": int(params.get("slowperiod", "26")),
            "5.3: Signal Period": int(params.get("signalperiod", "9")),
            "6: Series Type": params["series_type"],
            "7: Time Zone": TIME_ZONE,
        }
    else:
        meta |= {
            "5: Time Period": int(params["time_period"]),
            "6.1: Deviation multiplier for upper band": int(params.get("nbdevup", "2")),
            "6.2: Deviation multiplier for lower band": int(params.get("nbdevdn", "2")),
            "6.3: MA Type": int(params.get("matype", "0")),
            "7: Series Type": params["series_type"],
            "8: Time Zone": TIME_ZONE,
        }
    return {"Meta Data": meta, f"Technical Analysis: {function}": points}


def global_quote(seed: int, symbol: str, asof: dt.date) -> Body:
    if symbol.startswith(UNKNOWN_PREFIX):
        return {"Global Quote": {}}
    r = rng(seed, "quote", symbol, asof.isoformat())
    price = price_cents(seed, symbol) * 100  # 1e-4 units
    prev = price + r.randrange(-price // 40, price // 40 + 1)
    change = price - prev
    opened = prev + r.randrange(-5000, 5000)
    return {
        "Global Quote": {
            "01. symbol": symbol,
            "02. open": _d(opened, 4),
            "03. high": _d(max(opened, price) + r.randrange(0, 20000), 4),
            "04. low": _d(min(opened, price) - r.randrange(0, 20000), 4),
            "05. price": _d(price, 4),
            "06. volume": str(r.randrange(100_000, 90_000_000)),
            "07. latest trading day": asof.isoformat(),
            "08. previous close": _d(prev, 4),
            "09. change": _d(change, 4),
            "10. change percent": _d(change * 1_000_000 // prev, 4) + "%",
        }
    }
