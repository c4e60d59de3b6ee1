"""Alpha Vantage as a polled REST vendor: its feeds (one per symbol and data type) and body classification.

Alpha Vantage reports throttling and errors in HTTP 200 bodies, so the body decides the outcome:
``Note``/``Information`` -> ``throttle``; ``Error Message`` -> ``error``; the premium-endpoint sample
(``"This is a premium endpoint"``, rows of ``XXYYZZ…`` contracts) -> ``premium_sample``; a body that is
not a JSON object of a known shape -> ``malformed``; HTTP 429 -> ``throttle``; other HTTP errors ->
``http_error``. Only a real data body is ``data``; an empty options chain (``data: []``) is data too
(it clears the cached chain downstream).
"""

from __future__ import annotations

import argparse
import urllib.parse
from typing import Any

import msgspec

from tickwire.contract.adapter import ConfigError
from tickwire.contract.rest import DATA, RestFeed
from tickwire.contract.settings import is_local_url
from tickwire.vendors.alphavantage.settings import AlphaVantageSettings

SOURCE = "alphavantage"
_SIM_CREDENTIAL = "tickwire-sim"
THROTTLE, ERROR, PREMIUM, MALFORMED, HTTP_ERROR = (
    "throttle",
    "error",
    "premium_sample",
    "malformed",
    "http_error",
)
DATA_KEYS = ("data", "feed", "Global Quote")
PREMIUM_MARK = "premium endpoint"
PREMIUM_CONTRACT = "XXYYZZ"
_DECODE = msgspec.json.Decoder()


def classify(status: int, body: bytes) -> str:
    """The outcome of one response: ``data`` or the failure kind (see the module docstring)."""
    if status == 429:
        return THROTTLE
    if status >= 400:
        return HTTP_ERROR
    try:
        obj = _DECODE.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return MALFORMED
    if not isinstance(obj, dict):
        return MALFORMED
    if "Note" in obj or "Information" in obj:
        return THROTTLE
    if "Error Message" in obj:
        return ERROR
    if is_premium_sample(obj):
        return PREMIUM
    if any(k in obj for k in DATA_KEYS) or any(k.startswith("Technical Analysis") for k in obj):
        return DATA
    return MALFORMED


def is_premium_sample(obj: dict[str, Any]) -> bool:
    if PREMIUM_MARK in str(obj.get("message", "")).lower():
        return True
    rows = obj.get("data")
    if isinstance(rows, list):
        return any(
            isinstance(r, dict) and str(r.get("contractID", "")).startswith(PREMIUM_CONTRACT) for r in rows
        )
    return False


def _indicator_params(s: AlphaVantageSettings, name: str) -> list[tuple[str, str]]:
    p = [("interval", s.indicator_interval)]
    period = {"RSI": s.rsi_period, "BBANDS": s.bbands_period, "ATR": s.atr_period}.get(name)
    if period is not None:
        p.append(("time_period", str(period)))
    if name != "ATR":
        p.append(("series_type", s.series_type))
    return p


def feeds(s: AlphaVantageSettings) -> list[RestFeed]:
    """One feed per (symbol, data type): options chain, sentiment (ETFs skipped), each indicator."""
    out: list[RestFeed] = []
    params: tuple[tuple[str, str], ...]
    for sym in s.symbols:
        if "options" in s.data_types:
            params = (("function", "REALTIME_OPTIONS"), ("symbol", sym))
            if s.require_greeks:
                params += (("require_greeks", "true"),)
            out.append(RestFeed(f"{sym}:options", "rest.realtime_options", sym, params, s.options_interval_s))
        if "sentiment" in s.data_types and sym not in s.sentiment_skip:
            params = (("function", "NEWS_SENTIMENT"), ("tickers", sym), ("limit", str(s.sentiment_limit)))
            out.append(
                RestFeed(f"{sym}:sentiment", "rest.news_sentiment", sym, params, s.sentiment_interval_s)
            )
        if "technicals" in s.data_types:
            for ind in s.indicators:
                params = (("function", ind), ("symbol", sym), *_indicator_params(s, ind))
                out.append(
                    RestFeed(
                        f"{sym}:{ind.lower()}", f"rest.{ind.lower()}", sym, params, s.technicals_interval_s
                    )
                )
    return out


class AlphaVantageAdapter:
    source = SOURCE
    content_type = "json"
    retryable = frozenset({THROTTLE, HTTP_ERROR, MALFORMED})
    throttles = frozenset({THROTTLE})

    def __init__(self, settings: AlphaVantageSettings) -> None:
        if settings.api_key is None:
            raise ConfigError("ALPHAVANTAGE_API_KEY missing")
        self.s = settings
        self._key = settings.api_key

    def feeds(self) -> list[RestFeed]:
        return feeds(self.s)

    def url(self, feed: RestFeed) -> str:
        query = urllib.parse.urlencode([*feed.params, ("apikey", self._key.get_secret_value())])
        return f"{self.s.base_url}?{query}"

    def classify(self, status: int, body: bytes) -> str:
        return classify(status, body)

    def __repr__(self) -> str:
        return f"AlphaVantageAdapter(base_url={self.s.base_url!r}, feeds={len(self.feeds())})"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--symbols", help="comma-separated symbols (default $ALPHAVANTAGE_SYMBOLS)")


def build_rest(
    args: argparse.Namespace, overrides: dict[str, Any]
) -> tuple[AlphaVantageSettings, AlphaVantageAdapter]:
    """``tickwire ingest alphavantage``: ``--url`` is the ``/query`` endpoint (e.g. a simulator's)."""
    ov = dict(overrides)
    if getattr(args, "url", None):
        ov["base_url"] = args.url
    if getattr(args, "symbols", None):
        ov["symbols"] = args.symbols
    s = AlphaVantageSettings.load(**ov)
    if s.api_key is None:
        if not is_local_url(s.base_url):
            raise ConfigError(
                "Alpha Vantage API key missing: set ALPHAVANTAGE_API_KEY "
                "(a simulator URL on localhost runs without it)"
            )
        s = AlphaVantageSettings.load(**ov, api_key=_SIM_CREDENTIAL)
    return s, AlphaVantageAdapter(s)
