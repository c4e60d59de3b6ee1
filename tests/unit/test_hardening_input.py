"""Issue 16, input side: one regression test per finding (each failed on the code before the fix).

Hostile amounts, nesting, DBN framing and symbol mappings, time windows, symbols, timestamps, and state
that input could grow without bound.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from types import SimpleNamespace
from typing import Any

import databento_dbn as dbn
import msgpack
import pytest

from tests.unit.test_normalize_pipeline import CODEC, MIN, T0, Feed, make
from tickwire import vendors
from tickwire.contract import routing
from tickwire.contract.envelope import Envelope
from tickwire.contract.exact import AmountError, parse_units
from tickwire.contract.parser import ParseError, ParseOutput
from tickwire.contract.records import Bar, BookUpdate, Gap, Level
from tickwire.contract.symbols import rfc3339_to_ns
from tickwire.normalize.pipeline import Pipeline, RawMessage, Result

pytestmark = pytest.mark.unit

HOUR = 60 * MIN
NOW = 1_764_633_600 * 10**9  # 2025-12-02T00:00Z: the receive (replay) clock of the DBN cases


def _env(source: str, stream: str = "ws", ts_recv: int = NOW, content_type: str = "json") -> Envelope:
    return Envelope(source, stream, 1, 1, ts_recv, content_type)


def _dlq_only(res: Result, topic: str) -> str:
    """The error class of a raw record that produced nothing but its DLQ copy."""
    assert res.status == "dlq", res
    assert [o.topic for o in res.outputs] == [topic + ".dlq"]
    assert res.error_class is not None
    return res.error_class


# ---- amounts: absurd exponents are rejected before any big-number arithmetic ---------------------------


@pytest.mark.parametrize("text", ["1E+999990", "1E+99990", "-7e+400000", "1e-999999", "1" * 5000])
def test_absurd_amount_is_rejected_fast(text: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(AmountError):
        parse_units(text)
    assert time.perf_counter() - t0 < 0.05


def test_amounts_at_the_decimal_38_9_limit_still_parse() -> None:
    assert parse_units("9" * 29) == int("9" * 29) * 10**9
    assert parse_units("9.9999999999999999999999999999E+28") == int("9" * 29) * 10**9
    assert parse_units("0E+999999") == 0
    assert parse_units("1.5E-8") == 15
    with pytest.raises(AmountError):
        parse_units("1E+29")
    with pytest.raises(AmountError):
        parse_units("1.5E-10")


def test_binance_frame_with_exponent_amount_is_a_fast_parse_error() -> None:
    data = b'{"u":1,"s":"BTCUSDT","b":"1E+999990","B":"1","a":"2","A":"1"}'
    frame = b'{"stream":"btcusdt@bookTicker","data":' + data + b"}"
    parser = vendors.get_parser("binance")
    t0 = time.perf_counter()
    with pytest.raises(ParseError, match="decimal"):
        parser.parse(frame, _env("binance"), parser.new_state())
    assert time.perf_counter() - t0 < 0.05


# ---- JSON nesting: a clean parse error, never RecursionError ---------------------------------------------


@pytest.mark.parametrize("source", ["binance", "coinbase", "polygon", "alpaca"])
@pytest.mark.parametrize("shape", ["array", "object", "unbalanced"])
def test_deeply_nested_json_is_a_parse_error(source: str, shape: str) -> None:
    n = 100_000
    deep = {
        "array": b"[" * n + b"]" * n,
        "object": b'{"a":' * n + b"1" + b"}" * n,
        "unbalanced": b'{"data":' + b"[" * n,
    }[shape]
    parser = vendors.get_parser(source)
    with pytest.raises(ParseError):
        parser.parse(deep, _env(source), parser.new_state())


# ---- DBN: framing, counts, symbol mappings, the replay clock ----------------------------------------------

DAY = dt.date(2025, 12, 1)
DAY_NS = 1_764_547_200 * 10**9  # 2025-12-01T00:00Z


def _metadata(intervals: list[tuple[dt.date, dt.date]], schema: Any = dbn.Schema.TRADES) -> bytes:
    ms = [
        SimpleNamespace(
            raw_symbol="ESH6",
            intervals=[SimpleNamespace(start_date=a, end_date=b, symbol="5482") for a, b in intervals],
        )
    ]
    md = dbn.Metadata(
        dataset="GLBX.MDP3",
        start=DAY_NS,
        stype_in=dbn.SType.RAW_SYMBOL,
        stype_out=dbn.SType.INSTRUMENT_ID,
        schema=schema,
        symbols=["ESH6"],
        partial=[],
        not_found=[],
        mappings=ms,
        end=DAY_NS + 86_400 * 10**9,
    )
    return bytes(md.encode())


def _dbn_trade(seq: int, ts: int = DAY_NS + HOUR) -> bytes:
    return bytes(
        dbn.TradeMsg(
            publisher_id=1,
            instrument_id=5482,
            ts_event=ts,
            price=6_800_250_000_000,
            size=3,
            side=dbn.Side.BID,
            depth=0,
            ts_recv=ts + 500,
            flags=dbn.F_LAST,
            ts_in_delta=100,
            sequence=seq,
            action=dbn.Action.TRADE,
        )
    )


def _dbn_parse(payload: bytes) -> Any:
    parser = vendors.get_parser("databento")
    return parser.parse(
        payload, _env("databento", "replay.GLBX.MDP3", content_type="dbn"), parser.new_state()
    )


def test_dbn_message_truncated_mid_record_is_an_error() -> None:
    head = _metadata([(DAY, DAY + dt.timedelta(days=1))])
    whole = head + b"".join(_dbn_trade(i) for i in range(1, 6))
    assert [r.seq for r in _dbn_parse(whole).records] == [1] * 5  # the intact message: 5 trades
    for cut in (1, 10, 47):
        with pytest.raises(ParseError, match="truncated"):
            _dbn_parse(whole[:-cut])


def test_dbn_record_with_a_corrupt_length_is_an_error_before_decoding() -> None:
    head = _metadata([(DAY, DAY + dt.timedelta(days=1))])
    rec = bytearray(_dbn_trade(1))
    rec[0] = 200  # 800 bytes claimed for a 48-byte trade
    with pytest.raises(ParseError, match="length"):
        _dbn_parse(head + bytes(rec) + _dbn_trade(2) * 20)


def test_dbn_uint32_level_count_fits_the_avro_type() -> None:
    top = 2**32 - 1  # DBN bid_ct/ask_ct are uint32
    book = BookUpdate(
        symbol="ESH6",
        asset_class="future",
        source="databento",
        stream="replay.GLBX.MDP3",
        session=1,
        seq=1,
        ts_event=DAY_NS,
        ts_recv=DAY_NS,
        bids=(Level(1, 1, top),),
        asks=(Level(2, 1, top),),
        depth=10,
    )
    back = CODEC.decode(CODEC.encode(book))
    assert [lv.count for lv in (*back.bids, *back.asks)] == [top, top]


def test_dbn_symbol_mapping_over_ten_thousand_years_stays_small_and_fast() -> None:
    # One interval per year-range: expanding it per day was 3.65M dict entries per interval.
    head = _metadata([(dt.date(1, 1, 1), dt.date(9999, 12, 31)), (DAY, DAY + dt.timedelta(days=1))])
    t0 = time.perf_counter()
    out = _dbn_parse(head + _dbn_trade(1))
    assert time.perf_counter() - t0 < 0.2
    assert [(r.symbol, r.price) for r in out.records] == [("ESH6", 6_800_250_000_000)]


def _dbn_msg(feed: Feed, payload: bytes, ts_recv: int) -> RawMessage:
    feed.seq += 1
    feed.offset += 1
    env = Envelope("databento", "replay.GLBX.MDP3", 7, feed.seq, ts_recv, "dbn")
    return RawMessage("databento.raw", 0, feed.offset, b"k", payload, env.to_headers())


def test_dbn_trade_dated_2126_is_rejected_against_the_replay_clock() -> None:
    p, f = make(), Feed("databento")
    head = _metadata([(DAY, DAY + dt.timedelta(days=1)), (dt.date(2126, 1, 1), dt.date(2126, 1, 2))])
    ok = p.process(_dbn_msg(f, head + _dbn_trade(1), NOW))
    assert ok.status == "ok" and [o.topic for o in ok.outputs] == ["future_trades_realtime"]
    ts_2126 = 4_922_812_800 * 10**9  # 2126-01-01T00:00Z; the record's own ts_recv is in 2126 as well
    res = p.process(_dbn_msg(f, head + _dbn_trade(2, ts_2126 + HOUR), NOW))
    assert _dlq_only(res, "databento.raw") == "ValidationError"


# ---- event time: both directions; bar watermarks move only on records that pass ---------------------------


def test_trade_23h_ahead_is_rejected_and_the_day_still_gets_bars() -> None:
    p, f = make(bar_sources=frozenset({"fake"})), Feed()

    def trade(ts: int, ts_recv: int) -> Result:
        return p.process(
            f.msg({"t": "trade", "s": "BTC/USD", "p": "10.5", "q": "1", "ts": ts}, ts_recv=ts_recv)
        )

    assert trade(T0, T0).status == "ok"
    future = trade(T0 + 23 * HOUR, T0 + 1)
    assert _dlq_only(future, "fake.raw") == "ValidationError"
    bars = []
    for i in range(1, 601):  # ten minutes of trades, one a second
        res = trade(T0 + i * 10**9, T0 + i * 10**9 + 1)
        assert res.status == "ok" and res.late_trades == 0
        bars += [CODEC.decode(o.value) for o in res.outputs if o.topic == "crypto_bars_staging"]
    assert [b.ts_event for b in bars] == [T0 - T0 % MIN + k * MIN for k in range(len(bars))]
    assert len(bars) >= 9 and all(isinstance(b, Bar) and b.symbol == "BTC/USD" for b in bars)


def test_event_time_too_far_behind_the_receive_time_is_rejected() -> None:
    p, f = make(), Feed()
    res = p.process(
        f.msg({"t": "trade", "s": "BTC/USD", "p": "1", "q": "1", "ts": T0}, ts_recv=T0 + 50 * HOUR)
    )
    assert _dlq_only(res, "fake.raw") == "ValidationError"


# ---- symbols: the canonical grammar at the parser boundary -------------------------------------------------


@pytest.mark.parametrize(
    ("asset_class", "symbol"),
    [
        ("equity", "AAPL:ticker"),
        ("equity", "A*"),
        ("equity", "X>Y"),
        ("equity", "A B"),
        ("equity", "AAPL\x00"),
        ("crypto", "BTC/USD*"),
        ("crypto", "SS/USDT "),
        ("equity", "A" * 65),
    ],
)
def test_non_canonical_symbol_goes_to_the_dlq_and_builds_no_key(asset_class: str, symbol: str) -> None:
    p, f = make(), Feed()
    res = p.process(f.msg({"t": "trade", "ac": asset_class, "s": symbol, "p": "1", "q": "1", "ts": T0}))
    assert _dlq_only(res, "fake.raw") == "ValidationError"
    assert symbol.encode() not in [o.key for o in res.outputs]


def test_binance_non_ascii_symbol_is_not_upper_cased_into_another_asset() -> None:
    parser = vendors.get_parser("binance")
    ms = NOW // 10**6
    frame = {"e": "aggTrade", "E": ms, "a": 1, "p": "1", "q": "1", "f": 1, "l": 1, "T": ms, "m": True}
    ok = parser.parse(json.dumps({**frame, "s": "ABCUSDT"}).encode(), _env("binance"), parser.new_state())
    assert [r.symbol for r in ok.records] == ["ABC/USDT"]
    with pytest.raises(ParseError, match="ASCII"):
        parser.parse(json.dumps({**frame, "s": "ßUSDT"}).encode(), _env("binance"), parser.new_state())


# ---- timestamps: the strict RFC 3339 grammar -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2025-12-01T-1:00:00Z",
        "2025-12-01T 1:00:00Z",
        "2025-12-01T+1:00:00Z",
        "2025-12-01T1_:00:00Z",
        "2025-12-01T01:00:00.-5Z",
        "2025-12-01T01:00:00+-1:00",
        "+025-12-01T01:00:00Z",
        "2025-12-01T01:00:00+24:00",
        "2025-12-01T01:00:00Z\n",
    ],
)
def test_lenient_timestamps_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        rfc3339_to_ns(text)


def test_strict_timestamps_still_parse() -> None:
    assert rfc3339_to_ns("2021-02-22T15:51:44.208123456Z") == 1614009104208123456
    assert rfc3339_to_ns("2021-02-22T16:51:44.2+01:00") == 1614009104200000000
    assert rfc3339_to_ns("2021-02-22 15:51:44z") == 1614009104000000000


# ---- bounded state ----------------------------------------------------------------------------------------


def test_20000_unknown_message_types_leave_bounded_alpaca_state() -> None:
    parser = vendors.get_parser("alpaca")
    state = parser.new_state()
    known = {"T": "t", "S": "AAPL", "i": 1, "x": "V", "p": 1.5, "s": 1, "t": "2025-12-01T15:00:00Z", "z": "C"}
    for i in range(20_000):
        frame = json.dumps([known, {"T": f"new-{i}"}]).encode()
        assert len(parser.parse(frame, _env("alpaca", "stocks.iex"), state).records) == 1
    assert len(state.skipped) <= 65
    assert sum(v for k, v in state.skipped.items() if k.startswith("unknown:")) == 20_000


def test_ended_sessions_dedupe_cursors_are_dropped() -> None:
    from tickwire.normalize.dedupe import MAX_SESSIONS

    store: dict[Any, Any] = {}
    p = make(store=store)
    for session in range(1, 41):  # 40 producer restarts of one stream
        env = Envelope("fake", "s", session, 1, T0, "json")
        body = json.dumps({"t": "trade", "s": "BTC/USD", "p": "1", "q": "1", "ts": T0}).encode()
        assert p.process(RawMessage("fake.raw", 0, session, b"k", body, env.to_headers())).status == "ok"
    st = p.store_for("fake.raw", 0)
    cursors = [k for k, _ in st.items(b"d|fake|s|") if not k.endswith(b"|sessions")]
    assert sorted(cursors) == sorted(f"d|fake|s|{s}".encode() for s in range(41 - MAX_SESSIONS, 41))
    again = Envelope("fake", "s", 40, 1, T0, "json")  # the live session still dedupes
    body = json.dumps({"t": "trade", "s": "BTC/USD", "p": "1", "q": "1", "ts": T0}).encode()
    assert p.process(RawMessage("fake.raw", 0, 99, b"k", body, again.to_headers())).status == "duplicate"


# ---- found by the fuzz job -----------------------------------------------------------------------------


def test_non_ascii_digit_in_an_amount_fraction_is_rejected() -> None:
    with pytest.raises(AmountError):
        parse_units("264.\u0663")  # ARABIC-INDIC DIGIT THREE: int() would read it as 3
    assert parse_units("264.3") == 264_300_000_000


def test_a_number_where_a_venue_goes_is_rejected() -> None:
    frame = msgpack.packb(
        [{"T": "q", "S": "AAPL", "t": "2025-12-01T15:00:00Z", "bx": 1e308, "bp": 0.51, "bs": 20, "ax": "Q",
          "ap": 0.55, "as": 31, "c": "R"}]
    )  # fmt: skip
    env = Envelope("alpaca", "stocks.iex", 1, 1, NOW, "msgpack")
    res = make().process(RawMessage("alpaca.raw", 0, 0, b"k", frame, env.to_headers()))
    assert _dlq_only(res, "alpaca.raw") == "ValidationError"


class _GapParser:
    """Emits a gap whose sequence numbers come from the payload, as vendor parsers do."""

    source = "fake"

    def new_state(self, metadata: Any = None) -> None:
        return None

    def parse(self, payload: bytes, env: Envelope, state: None) -> ParseOutput:
        last, first = json.loads(payload)
        gap = Gap(
            source="fake",
            stream=env.stream,
            reason="vendor_seq_jump",
            detected_by="normalizer",
            last_seq_before=last,
            first_seq_after=first,
            ts_start=env.ts_recv,
            ts_end=env.ts_recv,
        )
        return ParseOutput(gaps=[gap], control=True)


def test_a_parser_gap_with_numbers_beyond_avro_long_is_a_dlq_record_not_an_escape() -> None:
    p = Pipeline(
        get_parser=lambda _source: _GapParser(),
        encode=CODEC.encode,
        topic_for=routing.topic_for,
        key_for=routing.key_for,
    )
    f = Feed()
    ok = p.process(f.msg([1, 5]))
    assert [o.topic for o in ok.outputs] == ["tickwire.gaps"]
    res = p.process(f.msg([5, 2**64]))  # encoded after the per-message boundary: it raised out of process()
    assert _dlq_only(res, "fake.raw") == "ValidationError"
