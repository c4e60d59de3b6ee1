"""Alpha Vantage REST response bodies as msgspec Structs (the shapes of ``vendors-next.md`` §4.1).

Every value is JSON text as the API sends it (strings, even for numbers), so decimals stay exact; the
sentiment feed's ``overall_sentiment_score`` is a JSON number, decoded as ``Decimal`` (its exact text,
never a float). Field names follow the wire. A body is first split into its top-level keys
(``Top``: raw values) so throttle/error bodies are recognized by key presence before any typed decode.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

Top = dict[str, msgspec.Raw]


class OptionRow(msgspec.Struct, frozen=True):
    contractID: str
    symbol: str
    expiration: str
    strike: str
    type: str
    last: str | None = None
    mark: str | None = None
    bid: str | None = None
    bid_size: str | None = None
    ask: str | None = None
    ask_size: str | None = None
    volume: str | None = None
    open_interest: str | None = None
    date: str | None = None
    implied_volatility: str | None = None
    delta: str | None = None
    gamma: str | None = None
    theta: str | None = None
    vega: str | None = None
    rho: str | None = None


class OptionsBody(msgspec.Struct, frozen=True):
    data: list[OptionRow]
    endpoint: str = ""
    message: str = ""


class TopicRow(msgspec.Struct, frozen=True):
    topic: str
    relevance_score: str


class TickerRow(msgspec.Struct, frozen=True):
    ticker: str
    relevance_score: str
    ticker_sentiment_score: str
    ticker_sentiment_label: str = ""


class Article(msgspec.Struct, frozen=True):
    title: str
    url: str
    time_published: str  # YYYYMMDDTHHMMSS, exchange-local (US/Eastern) time
    source: str = ""
    authors: list[str] = []
    summary: str = ""
    banner_image: str | None = None
    category_within_source: str | None = None
    source_domain: str | None = None
    topics: list[TopicRow] = []
    overall_sentiment_score: Decimal | None = None
    overall_sentiment_label: str | None = None
    ticker_sentiment: list[TickerRow] = []


class NewsBody(msgspec.Struct, frozen=True):
    feed: list[Article]
    items: str = ""


# Technicals: {"Meta Data": {"1: Symbol", ..., "7: Time Zone"}, "Technical Analysis: X": {time: {name: v}}}
Meta = dict[str, Any]
Points = dict[str, dict[str, str]]

META_KEY = "Meta Data"
TECH_PREFIX = "Technical Analysis: "
THROTTLE_KEYS = ("Note", "Information")
ERROR_KEY = "Error Message"
QUOTE_KEY = "Global Quote"
PREMIUM_MARKERS = ("premium endpoint", "SAMPLE DATA")
PREMIUM_CONTRACT = "XXYYZZ"
