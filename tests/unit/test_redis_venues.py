"""Redis surfaces of per-venue-book sources (book keys, ticker rule) and the heartbeat status keys."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tickwire.bridges import redis_status, redis_venues, shapes
from tickwire.contract.records import BookUpdate, Heartbeat, Level, Quote

T = 1_765_000_000 * 10**9


@pytest.fixture
def venue_source(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(redis_venues, "venue_book_sources", lambda: frozenset({"vb"}))
    yield


def _book(source: str, venue: str | None) -> BookUpdate:
    return BookUpdate(
        symbol="SPY", asset_class="equity", source=source, venue=venue, stream="s", session=1, seq=1,
        ts_event=T, ts_recv=T, bids=(Level(10, 1, 2),), asks=(Level(11, 3),), snapshot=True,
    )  # fmt: skip


def _quote(source: str, venue: str, bid: int) -> Quote:
    return Quote(
        symbol="SPY", asset_class="equity", source=source, venue=venue, stream="s", session=1, seq=1,
        ts_event=T, ts_recv=T, bid_price=bid, bid_size=1, ask_price=bid + 2, ask_size=1,
    )  # fmt: skip


def test_per_venue_book_key_and_json(venue_source: None) -> None:
    assert redis_venues.book_key(_book("other", "ARCA")) == "SPY"
    key = redis_venues.book_key(_book("vb", "ARCA"))
    assert key == "SPY:ARCA"
    doc = json.loads(redis_venues.book_json(key, [Level(10, 1)], [Level(11, 3)], T))
    assert (doc["symbol"], doc["exchange"], doc["bids"][0]["price"]) == ("SPY", "ARCA", 10e-9)
    assert "exchange" not in json.loads(redis_venues.book_json("QQQ", [], [], T))
    assert redis_venues.book_key(_book("vb", None)) == "SPY"


def test_ticker_follows_only_the_nbbo_of_venue_sources(venue_source: None) -> None:
    t = shapes.Ticker("SPY")
    assert not redis_venues.quote_moves_ticker(t, _quote("vb", "SMART", 5)) and t.bid is None
    assert redis_venues.quote_moves_ticker(t, _quote("vb", "NBBO", 7)) and t.bid == 7
    assert redis_venues.quote_moves_ticker(t, _quote("other", "SMART", 9)) and t.bid == 9


def test_status_values_shapes() -> None:
    keys = (
        ("x:connected", "connected"),
        ("monitoring:x:metrics", "metrics"),
        ("heartbeat:x_ingestion", "heartbeat"),
    )
    hb = Heartbeat(
        component="ingest.x",
        instance="h:1",
        ts=T,
        status="ok",
        stats={"connected": "0", "reconnects": "3", "stream": "tws.1"},
    )
    got = dict(redis_status.status_values(hb, keys))
    assert got["x:connected"] == b"0"  # the link is down although the producer's broker side is ok
    metrics = json.loads(got["monitoring:x:metrics"])
    assert (metrics["reconnects"], metrics["stream"], metrics["status"], metrics["ts_ns"]) == (
        3,
        "tws.1",
        "ok",
        T,
    )
    beat = json.loads(got["heartbeat:x_ingestion"])
    assert (beat["component"], beat["connected"], beat["timestamp"]) == (
        "ingest.x",
        False,
        "2025-12-06T05:46:40.000Z",
    )
    no_flag = Heartbeat(component="ingest.x", instance="h:1", ts=T, status="ok")
    assert dict(redis_status.status_values(no_flag, keys[:1]))["x:connected"] == b"1"


def test_declared_status_keys_are_known_shapes() -> None:
    for name, keys in redis_status.status_map().items():
        assert keys and all(shape in redis_status.SHAPES for _, shape in keys), name


def test_unknown_status_key_shape_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from tickwire import vendors
    from tickwire.contract.vendor import VendorSpec

    bad = VendorSpec(name="zz", summary="", parser="x:y", status_keys=(("zz:up", "uptime"),))
    monkeypatch.setattr(vendors, "specs", lambda: {"zz": bad})
    redis_status.status_map.cache_clear()
    try:
        with pytest.raises(ValueError, match="uptime"):
            redis_status.status_map()
    finally:
        redis_status.status_map.cache_clear()
