"""The normalizer's per-message core: records, DLQ decisions, dedupe, gaps, rewinds, bars."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tickwire import vendors as registry
from tickwire.contract import routing
from tickwire.contract.codec import Codec
from tickwire.contract.envelope import (
    H_ERROR_CLASS,
    H_ERROR_MESSAGE,
    H_SRC_OFFSET,
    H_SRC_PARTITION,
    H_SRC_TOPIC,
    Envelope,
)
from tickwire.contract.exact import float_to_units, parse_units
from tickwire.contract.parser import ParseError, ParseOutput
from tickwire.contract.records import Bar, Gap, Quote, Trade
from tickwire.normalize.pipeline import Pipeline, RawMessage, Result
from tickwire.normalize.validate import CROSSED

CODEC = Codec()
T0 = 1_700_000_040_000_000_000
MIN = 60_000_000_000
SESSION = 1_699_000_000_000_000_000


class FakeParser:
    """JSON lines {"t": "trade"|"quote"|"ack", ...}; amounts as text or JSON numbers."""

    source = "fake"

    def new_state(self, metadata: Any = None) -> dict[str, int]:
        return {"n": 0}

    def parse(self, payload: bytes, env: Envelope, state: dict[str, int]) -> ParseOutput:
        state["n"] += 1
        try:
            msgs = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"not JSON: {exc}") from None
        out = ParseOutput()
        for i, m in enumerate(msgs if isinstance(msgs, list) else [msgs]):
            kind = m.get("t")
            common: dict[str, Any] = dict(
                symbol=m.get("s", "A/USD"),
                asset_class=m.get("ac", "crypto"),
                source=env.source,
                stream=env.stream,
                session=env.session,
                seq=env.seq,
                sub_seq=i,
                ts_event=m.get("ts", env.ts_recv),
                ts_recv=env.ts_recv,
            )
            if kind == "ack":
                out.control = True
            elif kind == "trade":
                out.records.append(Trade(price=_amt(m["p"]), size=_amt(m["q"]), **common))
            elif kind == "quote":
                out.records.append(
                    Quote(bid_price=_amt(m["bp"]), bid_size=1, ask_price=_amt(m["ap"]), ask_size=1, **common)
                )
            else:
                raise ParseError(f"unknown message type {kind!r}")
        return out


def _amt(v: Any) -> int:
    return parse_units(v) if isinstance(v, str) else float_to_units(v)


def parsers(source: str) -> Any:
    if source == "fake":
        return FakeParser()
    return registry.get_parser(source)


def make(store: dict[str, bytes] | None = None, **kw: Any) -> Pipeline:
    return Pipeline(
        get_parser=parsers,
        encode=CODEC.encode,
        topic_for=routing.topic_for,
        key_for=routing.key_for,
        store={} if store is None else store,
        **kw,
    )


class Feed:
    """Builds raw messages of one (source, stream, session) with growing seq and offsets."""

    def __init__(self, source: str = "fake", stream: str = "s", partition: int = 0, prefix: str = "") -> None:
        self.source, self.stream, self.partition, self.prefix = source, stream, partition, prefix
        self.seq = 0
        self.offset = -1

    def msg(
        self, payload: bytes | Any, *, seq: int | None = None, ts_recv: int = T0 + 10 * MIN
    ) -> RawMessage:
        if not isinstance(payload, bytes):
            payload = json.dumps(payload).encode()
        self.seq = self.seq + 1 if seq is None else seq
        self.offset += 1
        env = Envelope(self.source, self.stream, SESSION, self.seq, ts_recv, "json")
        topic = f"{self.prefix}{self.source}.raw"
        return RawMessage(topic, self.partition, self.offset, b"k", payload, env.to_headers())


def decoded(res: Result, topic: str) -> list[Any]:
    return [CODEC.decode(o.value) for o in res.outputs if o.topic == topic]


def hdr(res: Result) -> dict[str, bytes]:
    (o,) = res.outputs
    assert o.headers is not None
    return dict(o.headers)


GOOD = {"t": "trade", "s": "BTC/USD", "p": "25000.5", "q": "0.25", "ts": T0}


def test_good_trade_is_encoded_routed_and_keyed() -> None:
    p, f = make(topic_prefix="x."), Feed(prefix="x.")
    res = p.process(f.msg(GOOD))
    assert res.status == "ok"
    (o,) = res.outputs
    assert (o.topic, o.key) == ("x.crypto_trades_realtime", b"BTC/USD")
    t = CODEC.decode(o.value)
    assert isinstance(t, Trade)
    assert (t.price, t.size, t.seq, t.session, t.ts_event) == (
        25_000_500_000_000,
        250_000_000,
        1,
        SESSION,
        T0,
    )


BAD: list[tuple[str, bytes | Any, str]] = [
    ("truncated JSON", b'{"t": "trade", "p": "1', "ParseError"),
    ("wrong types", {"t": "trade", "p": "1", "q": "1", "ts": "yesterday"}, "TypeError"),
    ("NaN price", b'{"t": "trade", "p": NaN, "q": "1"}', "AmountError"),
    ("unknown type", {"t": "mystery"}, "ParseError"),
    ("binary garbage", bytes(range(256)) * 3, "ParseError"),
    ("negative size", {"t": "trade", "p": "1", "q": "-1", "ts": T0}, "ValidationError"),
    ("zero price", {"t": "trade", "p": "0", "q": "1", "ts": T0}, "ValidationError"),
    ("empty symbol", {"t": "trade", "s": "", "p": "1", "q": "1", "ts": T0}, "ValidationError"),
    ("ts before 2000", {"t": "trade", "p": "1", "q": "1", "ts": 946_684_799_999_999_999}, "ValidationError"),
    (
        "ts > recv + 1 day",
        {"t": "trade", "p": "1", "q": "1", "ts": T0 + 10 * MIN + 86_400 * 10**9 + 1},
        "ValidationError",
    ),
    ("half bad batch", [GOOD, {"t": "trade", "p": "1", "q": "-2", "ts": T0}], "ValidationError"),
]


@pytest.mark.parametrize(("what", "payload", "error"), BAD, ids=[b[0] for b in BAD])
def test_bad_payload_goes_to_dlq_and_neighbours_are_unaffected(what: str, payload: Any, error: str) -> None:
    p, f = make(), Feed(partition=2)
    before = p.process(f.msg(GOOD))
    bad_msg = f.msg(payload)
    bad = p.process(bad_msg)
    after = p.process(f.msg(GOOD))
    assert bad.status == "dlq" and bad.error_class == error
    (o,) = bad.outputs  # whole raw record, nothing half-published
    assert (o.topic, o.key, o.value) == ("fake.raw.dlq", b"k", bad_msg.value)
    h = hdr(bad)
    assert h[H_ERROR_CLASS] == error.encode()
    assert h[H_ERROR_MESSAGE]
    assert (h[H_SRC_TOPIC], h[H_SRC_PARTITION], h[H_SRC_OFFSET]) == (b"fake.raw", b"2", b"1")
    assert h["tw-seq"] == b"2" and h["tw-source"] == b"fake"  # original headers kept
    for r in (before, after):
        assert r.status == "ok"
        (t,) = decoded(r, "crypto_trades_realtime")
        assert t.price == parse_units("25000.5")


def test_envelope_and_source_errors_go_to_the_topics_dlq() -> None:
    p = make()
    res = p.process(RawMessage("fake.raw", 0, 0, None, b"x", [("tw-source", b"fake")]))
    assert res.status == "dlq" and res.error_class == "EnvelopeError"
    assert res.outputs[0].topic == "fake.raw.dlq"
    # A source no parser knows: DLQ of the topic it came from.
    env = Envelope("nosuch", "s", 1, 1, T0, "json")
    res = p.process(RawMessage("nosuch.raw", 0, 0, None, b"{}", env.to_headers()))
    assert (res.status, res.error_class, res.outputs[0].topic) == (
        "dlq",
        "UnknownVendorError",
        "nosuch.raw.dlq",
    )
    # Header naming another source than the topic: refused, not parsed as the wrong vendor.
    res = p.process(
        RawMessage("other.raw", 0, 0, None, b"{}", Envelope("fake", "s", 1, 1, T0, "json").to_headers())
    )
    assert (res.status, res.outputs[0].topic) == ("dlq", "other.raw.dlq")


def test_control_frames_are_skipped_not_dlqd() -> None:
    res = make().process(Feed().msg({"t": "ack"}))
    assert (res.status, res.outputs) == ("control", [])


def test_crossed_quote_is_kept_and_flagged_future_may_be_negative() -> None:
    p, f = make(), Feed()
    res = p.process(f.msg({"t": "quote", "bp": "10", "ap": "9", "ts": T0}))
    (q,) = decoded(res, "crypto_quotes_realtime")
    assert CROSSED in q.conditions and res.crossed == 1
    res = p.process(f.msg({"t": "quote", "bp": "9", "ap": "10", "ts": T0}))
    (q,) = decoded(res, "crypto_quotes_realtime")
    assert q.conditions == () and res.crossed == 0
    res = p.process(f.msg({"t": "trade", "ac": "future", "s": "CL", "p": "-37.63", "q": "1", "ts": T0}))
    (t,) = decoded(res, "future_trades_realtime")
    assert t.price == parse_units("-37.63")


def test_duplicate_raw_record_yields_its_records_once() -> None:
    p, f = make(), Feed()
    first = f.msg(GOOD)
    assert p.process(first).status == "ok"
    retry = RawMessage(first.topic, first.partition, first.offset + 5, first.key, first.value, first.headers)
    res = p.process(retry)
    assert (res.status, res.outputs) == ("duplicate", [])
    # Another partition holds other records of the same stream: its own high-water mark.
    g = Feed(partition=1)
    assert p.process(g.msg(GOOD, seq=1)).status == "ok"


def test_seq_jump_is_a_gap_only_for_stream_keyed_sources() -> None:
    for gap_sources, expect in ((frozenset({"fake"}), 1), (frozenset(), 0)):
        p, f = make(seq_gap_sources=gap_sources), Feed()
        p.process(f.msg(GOOD, seq=1, ts_recv=T0 + 1))
        res = p.process(f.msg(GOOD, seq=5, ts_recv=T0 + 2))
        gaps = decoded(res, "tickwire.gaps")
        assert res.gaps == len(gaps) == expect
        assert len(decoded(res, "crypto_trades_realtime")) == 1
        if expect:
            g = gaps[0]
            assert isinstance(g, Gap)
            assert (g.reason, g.detected_by, g.last_seq_before, g.first_seq_after) == (
                "source_seq_jump",
                "normalizer",
                1,
                5,
            )
            assert (g.ts_start, g.ts_end) == (T0 + 1, T0 + 2)
            assert [o.key for o in res.outputs if o.topic == "tickwire.gaps"] == [b"fake/s"]


def _bar_feed(n: int) -> list[dict[str, Any]]:
    return [
        {
            "t": "trade",
            "s": ("A/USD", "B/USD")[i % 2],
            "p": f"{10 + i % 7}.5",
            "q": f"{1 + i % 3}",
            "ts": T0 + i * 7 * 10**9,
        }
        for i in range(n)
    ]


def test_bars_follow_trades_and_survive_a_restart_from_the_store() -> None:
    msgs = _bar_feed(60)
    p, f = make(bar_sources=frozenset({"fake"})), Feed()
    straight = [o for m in msgs for o in p.process(f.msg(m)).outputs]
    bars = [CODEC.decode(o.value) for o in straight if o.topic == "crypto_bars_staging"]
    assert len(bars) >= 10 and all(isinstance(b, Bar) and b.origin == "aggregated" for b in bars)
    # Same input, restart half-way: a new Pipeline over the same store continues identically.
    store: dict[str, bytes] = {}
    f2 = Feed()
    first = make(store, bar_sources=frozenset({"fake"}))
    out = [o for m in msgs[:31] for o in first.process(f2.msg(m)).outputs]
    second = make(store, bar_sources=frozenset({"fake"}))
    out += [o for m in msgs[31:] for o in second.process(f2.msg(m)).outputs]
    assert out == straight


def test_offset_rewind_resets_state_and_replays_identically() -> None:
    msgs = _bar_feed(30)
    p, f = make(bar_sources=frozenset({"fake"})), Feed()
    raw = [f.msg(m) for m in msgs]
    first = [p.process(m) for m in raw]
    again = [p.process(m) for m in raw]  # offsets start over: an operator's reset, not duplicates
    assert again[0].rewound and not any(r.rewound for r in again[1:])
    assert [r.outputs for r in again] == [r.outputs for r in first]
    assert all(r.status == "ok" for r in again)


RECORDED = Path("/work/shared/data/recorded/cryptofeed-BINANCE.ws.1.0")


@pytest.mark.skipif(not RECORDED.exists(), reason="recorded Binance session not available")
def test_recorded_binance_session_with_garbage_in_between() -> None:
    frames = []
    for line in RECORDED.read_text().splitlines():
        m = re.match(r"^([0-9.]+): (.*)$", line)
        if m:
            frames.append((int(float(m.group(1)) * 1e9), m.group(2).encode()))
    frames = frames[:300]
    garbage = [b'{"stream":"x@aggTrade","data":{"e":"aggTrade"', b"\xff\x00\x13", b'{"e":"whoknows"}']

    def run(with_garbage: bool) -> tuple[list[Any], list[Result]]:
        p = make(bar_sources=frozenset({"binance"}))
        f = Feed(source="binance", stream="ws")
        good, results = [], []
        for i, (ts, payload) in enumerate(frames):
            if with_garbage and i % 50 == 25:
                results.append(p.process(f.msg(garbage[i % 3], ts_recv=ts)))
            r = p.process(f.msg(payload, ts_recv=ts))
            results.append(r)
            good += [CODEC.decode(o.value) for o in r.outputs if not o.topic.endswith(".dlq")]
        return good, results

    clean, _ = run(False)
    dirty, results = run(True)
    dlq = [r for r in results if r.status == "dlq"]
    assert len(dlq) == len(range(25, len(frames), 50)) >= 5
    kinds = {type(x).__name__ for x in clean}
    assert {"Trade", "Quote", "BookUpdate"} <= kinds

    # Same canonical records with or without garbage in between, except the seq numbers differ.
    def strip(xs: list[Any]) -> list[tuple[Any, ...]]:
        return [(type(x).__name__, x.symbol, x.ts_event, getattr(x, "price", None)) for x in xs]

    assert strip(dirty) == strip(clean)


def test_cached_routes_follow_type_asset_class_and_symbol() -> None:
    """The route cache is keyed by (type, asset class, symbol): the same symbol as another type or asset
    class, and another symbol, each get their own topic and key, with the prefix, as routing says."""
    pipe = make(topic_prefix="p.")
    base = dict(source="fake", stream="s", session=1, seq=1, ts_event=T0, ts_recv=T0)
    records = [
        Trade(symbol="AAPL", asset_class="equity", price=1, size=1, **base),
        Trade(symbol="AAPL", asset_class="equity", price=2, size=1, **base),
        Quote(symbol="AAPL", asset_class="equity", bid_price=1, bid_size=1, ask_price=2, ask_size=1, **base),
        Trade(symbol="AAPL", asset_class="crypto", price=1, size=1, **base),
        Trade(symbol="MSFT", asset_class="equity", price=1, size=1, **base),
    ] * 2  # the second pass is served from the cache
    got = [(o.topic, o.key) for o in pipe._outs(records)]
    want = [("p." + routing.topic_for(r), routing.key_for(r)) for r in records]
    assert got == want
    assert got[:5] == [
        ("p.stock_trades_realtime", b"AAPL"),
        ("p.stock_trades_realtime", b"AAPL"),
        ("p.stock_quotes_realtime", b"AAPL"),
        ("p.crypto_trades_realtime", b"AAPL"),
        ("p.stock_trades_realtime", b"MSFT"),
    ]
