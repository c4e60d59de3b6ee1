"""Canonical topic routing: one function decides where every canonical record goes."""

from __future__ import annotations

from typing import Any

from tickwire.contract import records

PREFIX: dict[str, str] = {
    "equity": "stock",
    "crypto": "crypto",
    "option": "option",
    "future": "future",
    "fx": "fx",
}
GAPS_TOPIC = "tickwire.gaps"
HEALTH_TOPIC = "tickwire.health"
INSTRUMENTS_TOPIC = "instrument_definitions"
SUBSCRIPTIONS_TOPIC = "control.subscriptions"
# Analytics snapshots (REST vendors): one topic per record type, whatever the asset class.
ANALYTICS_TOPICS: dict[type[Any], str] = {
    records.OptionChain: "option_chains_snapshot",
    records.NewsSentiment: "news_sentiment",
    records.IndicatorPoint: "technical_indicators",
}

_SUFFIX: dict[type[Any], str] = {
    records.Trade: "_trades_realtime",
    records.Quote: "_quotes_realtime",
    records.Bar: "_bars_staging",
    records.BookUpdate: "_book_realtime",
}


class RoutingError(ValueError):
    pass


def topic_for(record: Any) -> str:
    suffix = _SUFFIX.get(type(record))
    if suffix is not None:
        try:
            return PREFIX[record.asset_class] + suffix
        except KeyError:
            raise RoutingError(f"unknown asset_class {record.asset_class!r}") from None
    if isinstance(record, records.Instrument):
        return INSTRUMENTS_TOPIC
    analytics = ANALYTICS_TOPICS.get(type(record))
    if analytics is not None:
        return analytics
    if isinstance(record, records.Gap):
        return GAPS_TOPIC
    if isinstance(record, records.Heartbeat):
        return HEALTH_TOPIC
    if type(record).__name__ == "Subscription":
        return SUBSCRIPTIONS_TOPIC
    raise RoutingError(f"no topic for {type(record).__name__}")


def key_for(record: Any) -> bytes:
    """Kafka key: the canonical symbol (per-symbol ordering); a gap without symbol keys by source/stream."""
    if isinstance(record, records.Gap) and record.symbol is None:
        return f"{record.source}/{record.stream}".encode()
    if isinstance(record, records.Heartbeat):
        return f"{record.component}/{record.instance}".encode()
    symbol = getattr(record, "symbol", None)
    if symbol is None:
        if type(record).__name__ == "Subscription":
            return f"{record.vendor}/{record.stream_type}".encode()
        raise RoutingError(f"no key for {type(record).__name__}")
    key: bytes = symbol.encode()
    return key
