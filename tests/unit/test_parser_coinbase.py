"""Coinbase parser over the recorded real session (tests/fixtures/coinbase, and the whole session from
shared/data/recorded when it sits beside the repo) plus synthetic edge frames."""

from __future__ import annotations

import calendar
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tickwire.contract.envelope import Envelope
from tickwire.contract.parser import ParseError, ParseOutput
from tickwire.contract.records import BookUpdate, Level, Quote, Trade
from tickwire.recording import received
from tickwire.vendors.coinbase.parser import PARSER, CoinbaseState, iso_to_ns

FIX = Path(__file__).parents[1] / "fixtures" / "coinbase"
PRODUCTS = json.loads((FIX / "products.json").read_bytes())
FULL_SESSION = (
    Path(__file__).parents[2].parent / "shared" / "data" / "recorded" / "cryptofeed-COINBASE.ws.28.0"
)
T0 = 1_618_677_817_077_736_000


FRAMES = received(FIX / "ws-session-head.txt")


def env(seq: int = 1, ts_recv: int = T0, stream: str = "feed") -> Envelope:
    return Envelope("coinbase", stream, 7, seq, ts_recv, "json")


def parse(obj: Any, state: CoinbaseState, seq: int = 1, stream: str = "feed", ts: int = T0) -> ParseOutput:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return PARSER.parse(raw, env(seq, ts, stream), state)


def expected_ns(iso: str) -> int:
    """Independent reference: calendar.timegm on the whole seconds + the fraction digits as an int."""
    secs, _, frac = iso.rstrip("Z").partition(".")
    whole = calendar.timegm(tuple(int(x) for x in secs.replace("T", "-").replace(":", "-").split("-")))
    return whole * 10**9 + int(frac.ljust(9, "0"))


def match(pid: str, trade_id: int, side: str = "sell", seq: int = 1) -> dict[str, Any]:
    return {
        "type": "match",
        "trade_id": trade_id,
        "side": side,
        "size": "1.5",
        "price": "10.01",
        "product_id": pid,
        "sequence": seq,
        "time": "2021-04-17T16:43:37.089723Z",
    }


def first(type_: str, contains: bytes = b"") -> tuple[int, bytes]:
    return next(f for f in FRAMES if f'"type":"{type_}"'.encode() in f[1] and contains in f[1])


def test_recorded_match_inverts_maker_side() -> None:
    ts, p = first("match")
    out = PARSER.parse(p, env(3, ts), PARSER.new_state(PRODUCTS))
    (t,) = out.records
    assert isinstance(t, Trade) and not out.gaps and not out.control
    # {"trade_id":280232,"side":"sell","size":"985","price":"0.00001305","product_id":"SKL-BTC",...}
    assert (t.symbol, t.venue, t.asset_class) == ("SKL/BTC", "COINBASE", "crypto")
    assert (t.side, t.side_rule, t.trade_id) == (
        "buy",
        "maker_inverted",
        "280232",
    )  # maker sold: taker bought
    assert (t.price, t.size) == (13_050, 985 * 10**9)
    assert t.ts_event == 1_618_677_817_089_723_000 == expected_ns("2021-04-17T16:43:37.089723Z")
    assert (t.source, t.stream, t.session, t.seq, t.ts_recv) == ("coinbase", "feed", 7, 3, ts)
    (b,) = parse(match("BTC-USD", 5, side="buy"), PARSER.new_state()).records
    assert isinstance(b, Trade) and b.side == "sell"


def test_recorded_snapshot_and_l2update() -> None:
    st = PARSER.new_state(PRODUCTS)
    ts, p = first("snapshot", b'"BAND-GBP"')
    (snap,) = PARSER.parse(p, env(1, ts), st).records
    assert isinstance(snap, BookUpdate) and snap.snapshot and snap.symbol == "BAND/GBP"
    assert snap.asks[0] == Level(14_802_400_000, 12_770_000_000)  # ["14.8024","12.77"]
    assert snap.ts_event == ts  # 2021 snapshots have no time: ts_recv
    doc = json.loads(p)
    assert len(snap.bids) == len(doc["bids"]) and len(snap.asks) == len(doc["asks"])
    ts, p = first("l2update", b'"SKL-BTC"')
    (upd,) = PARSER.parse(p, env(2, ts), st).records
    # {"changes":[["sell","0.00001306","660.5"]],"time":"2021-04-17T16:43:37.075687Z"}
    assert isinstance(upd, BookUpdate) and not upd.snapshot and upd.bids == ()
    assert upd.asks == (Level(13_060, 660_500_000_000),)
    assert upd.ts_event == expected_ns("2021-04-17T16:43:37.075687Z")
    out = parse(
        {
            "type": "l2update",
            "product_id": "SKL-BTC",
            "changes": [["buy", "1", "0"]],
            "time": "2021-04-17T16:43:37Z",
        },
        st,
    )
    assert out.records[0].bids == (Level(10**9, 0),)  # type: ignore[union-attr]


def test_ticker_without_sizes_is_control_with_sizes_is_quote() -> None:
    st = PARSER.new_state()
    ts, p = first("ticker")
    assert PARSER.parse(p, env(1, ts), st) == ParseOutput(control=True)
    doc = json.loads(p) | {"best_bid_size": "2.5", "best_ask_size": "0.04"}
    (q,) = parse(doc, st, ts=ts).records
    assert isinstance(q, Quote) and q.symbol == doc["product_id"].replace("-", "/")
    assert (q.bid_price, q.bid_size, q.ask_size) == (
        int(doc["best_bid"].replace(".", "")) * 10**5,
        2_500_000_000,
        40_000_000,
    )
    assert q.ts_event == expected_ns(doc["time"])


def test_session_head_parses_without_errors() -> None:
    st = PARSER.new_state(PRODUCTS)
    kinds: Counter[str] = Counter()
    for seq, (ts, payload) in enumerate(FRAMES, 1):
        out = PARSER.parse(payload, env(seq, ts), st)
        assert not out.gaps and not out.resync
        kinds.update(type(r).__name__ for r in out.records)
        kinds["control"] += out.control
    # 3 subscriptions + 20 tickers without sizes; 10 snapshots + 243 l2updates; 10 last_match + 10 match
    assert kinds == Counter(BookUpdate=253, Trade=20, control=23)


@pytest.mark.skipif(not FULL_SESSION.exists(), reason=f"recorded session not found at {FULL_SESSION}")
def test_whole_recorded_session_parses_without_errors() -> None:
    st = PARSER.new_state(PRODUCTS)
    kinds: Counter[str] = Counter()
    for seq, (ts, payload) in enumerate(received(FULL_SESSION), 1):
        out = PARSER.parse(payload, env(seq, ts), st)
        assert not out.gaps and not out.resync  # trade ids are contiguous per product in the recording
        kinds.update(type(r).__name__ for r in out.records)
        kinds["control"] += out.control
    assert kinds == Counter(BookUpdate=9729, Trade=107, control=110)


def test_trade_id_gap_resyncs_only_that_product() -> None:
    st = PARSER.new_state()
    assert not parse(match("SKL-USD", 100), st).gaps
    assert not parse(match("SKL-BTC", 7), st).gaps
    assert not parse(match("SKL-USD", 101), st).gaps
    out = parse(match("SKL-USD", 105), st)
    assert len(out.records) == 1
    (gap,) = out.gaps
    assert (gap.symbol, gap.reason, gap.detected_by) == ("SKL/USD", "vendor_seq_jump", "normalizer")
    assert (gap.last_seq_before, gap.first_seq_after) == (101, 105)
    assert out.resync == ["SKL/USD"]
    assert st.needs_resync("SKL/USD") and not st.needs_resync("SKL/BTC")
    assert not parse(match("SKL-BTC", 8), st).gaps
    assert parse(match("SKL-USD", 105), st) == ParseOutput(control=True)  # duplicate trade
    assert not parse(match("SKL-USD", 106), st).gaps
    parse({"type": "snapshot", "product_id": "SKL-USD", "bids": [], "asks": []}, st)
    assert not st.needs_resync("SKL/USD")


def test_full_channel_sequence_continuity() -> None:
    st = PARSER.new_state()
    ev = {"type": "received", "product_id": "BTC-USD", "time": "2021-04-17T16:43:37Z", "sequence": 10}
    assert parse(ev, st) == ParseOutput(control=True)
    assert parse(match("BTC-USD", 1, seq=11), st).records
    assert parse(ev | {"type": "open", "sequence": 12}, st) == ParseOutput(control=True)
    out = parse(ev | {"type": "done", "sequence": 15}, st)
    assert out.control and [(g.last_seq_before, g.first_seq_after) for g in out.gaps] == [(12, 15)]
    assert out.resync == ["BTC/USD"]
    assert parse(match("BTC-USD", 2, seq=11), st) == ParseOutput(control=True)  # already seen


def test_products_metadata_and_symbols() -> None:
    st = PARSER.new_state()
    meta = [{"id": "WEIRD-ID", "base_currency": "AAA", "quote_currency": "BBB"}]
    assert parse(meta, st, stream="rest.products") == ParseOutput(control=True)
    assert parse(match("WEIRD-ID", 1), st).records[0].symbol == "AAA/BBB"
    assert PARSER.new_state(json.dumps(PRODUCTS)).symbols["SKL-BTC"] == "SKL/BTC"
    assert parse(match("eth-eur", 1), st).records[0].symbol == "ETH/EUR"


def test_control_frames() -> None:
    st = PARSER.new_state()
    for doc in (
        {"type": "subscriptions", "channels": []},
        {
            "type": "heartbeat",
            "sequence": 1,
            "last_trade_id": 2,
            "product_id": "BTC-USD",
            "time": "2021-04-17T16:43:37Z",
        },
        {"type": "error", "message": "Failed to subscribe", "reason": "x is not a valid product"},
    ):
        assert parse(doc, st) == ParseOutput(control=True)


@pytest.mark.parametrize(
    ("iso", "ns"),
    [
        ("2021-04-17T16:43:37.034538Z", 1_618_677_817_034_538_000),
        ("2021-04-17T16:43:37Z", 1_618_677_817_000_000_000),
        ("2021-04-17T16:43:37.123456789Z", 1_618_677_817_123_456_789),
        ("2021-04-17T18:43:37.5+02:00", 1_618_677_817_500_000_000),
        ("2000-01-01T00:00:00Z", 946_684_800_000_000_000),
        ("2024-02-29T23:59:59.999999999Z", 1_709_251_199_999_999_999),
    ],
)
def test_iso_to_ns_exact(iso: str, ns: int) -> None:
    assert iso_to_ns(iso) == ns
    if iso.endswith("Z"):
        assert expected_ns(iso) == ns


@pytest.mark.parametrize(
    "bad",
    [
        "2021-04-17 16:43",
        "2021-13-01T00:00:00Z",
        "2021-04-17T25:00:00Z",
        "x",
        "2021-04-17T16:43:37.1234567891Z",
    ],
)
def test_iso_to_ns_rejects(bad: str) -> None:
    with pytest.raises(ParseError):
        iso_to_ns(bad)


@pytest.mark.parametrize(
    ("doc", "match_"),
    [
        (match("BTC-USD", 1) | {"size": "-1"}, "negative"),
        (match("BTC-USD", 1) | {"price": "inf"}, "price"),
        (match("BTC-USD", 1) | {"side": "up"}, "neither buy nor sell"),
        (match("BTC-USD", 1) | {"product_id": "BTCUSD"}, "unknown symbol"),
        (match("BTC-USD", 1) | {"product_id": ""}, "non-empty"),
        (match("BTC-USD", 1) | {"time": "1999-12-31T23:59:59Z"}, "sane window"),
        (match("BTC-USD", 1) | {"time": "2021-04-19T00:00:00Z"}, "sane window"),
        (match("BTC-USD", 1) | {"trade_id": "1"}, "integer"),
        (match("BTC-USD", 1) | {"time": 1618677817}, "expected an ISO 8601 string"),
        (
            {
                "type": "l2update",
                "product_id": "BTC-USD",
                "changes": [["bid", "1", "1"]],
                "time": "2021-04-17T16:43:37Z",
            },
            "neither",
        ),
        ({"type": "done2"}, "unsupported"),
        ([1], "JSON object"),
    ],
)
def test_invalid_frames_raise_parse_error(doc: Any, match_: str) -> None:
    with pytest.raises(ParseError, match=match_):
        parse(doc, PARSER.new_state())


def test_non_json_and_json_number_amounts() -> None:
    with pytest.raises(ParseError, match="not JSON"):
        parse(b"{nope", PARSER.new_state())
    raw = json.dumps(match("BTC-USD", 1)).replace('"10.01"', "10.01").encode()
    (t,) = parse(raw, PARSER.new_state()).records
    assert isinstance(t, Trade) and t.price == 10_010_000_000
