"""Alpaca parser on recorded-style frames: exact values, policy for control/unknown/invalid input."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import msgpack
import pytest

from tickwire.contract.envelope import Envelope
from tickwire.contract.parser import ParseError, ParseOutput
from tickwire.contract.records import Bar, BookUpdate, Level, Quote, Trade
from tickwire.contract.symbols import parse_option, rfc3339_to_ns
from tickwire.normalize.parse_cli import recorded_items
from tickwire.vendors.alpaca.parser import PARSER, AlpacaState

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "alpaca"
TS_RECV = 1_708_963_200_011_480_000


def env(stream: str = "stocks.iex", ct: str = "json", ts_recv: int = TS_RECV, seq: int = 7) -> Envelope:
    return Envelope("alpaca", stream, 99, seq, ts_recv, ct)


def parse(frame: object, stream: str = "stocks.iex", state: AlpacaState | None = None) -> ParseOutput:
    payload = frame if isinstance(frame, bytes) else json.dumps(frame).encode()
    return PARSER.parse(payload, env(stream), state or PARSER.new_state())


def session(name: str) -> list[tuple[int, bytes, str | None, int | None]]:
    return list(recorded_items(FIX.joinpath(name).read_bytes().splitlines(), PARSER.stream_for_url))


def test_stock_trade_and_quote_exact() -> None:
    payload = (
        b'[{"T":"t","S":"AAPL","i":52983525029461,"x":"V","p":182.63,"s":100,"c":["@"],"z":"C",'
        b'"t":"2024-02-26T16:00:00.004521984Z"},{"T":"q","S":"AAPL","bx":"V","bp":182.62,"bs":3,"ax":"Q",'
        b'"ap":182.64,"as":2,"c":["R"],"z":"C","t":"2024-02-26T16:00:00.005106176Z"}]'
    )
    out = PARSER.parse(payload, env(), PARSER.new_state())
    trade, quote = out.records
    assert trade == Trade(
        symbol="AAPL",
        asset_class="equity",
        source="alpaca",
        venue="V",
        stream="stocks.iex",
        session=99,
        seq=7,
        sub_seq=0,
        ts_event=1_708_963_200_004_521_984,
        ts_recv=TS_RECV,
        price=182_630_000_000,
        size=100_000_000_000,
        side="unknown",
        side_rule="none",
        trade_id="52983525029461",
        conditions=("@",),
    )
    assert isinstance(quote, Quote)
    assert (quote.sub_seq, quote.bid_price, quote.bid_size, quote.ask_price, quote.ask_size) == (
        1,
        182_620_000_000,
        3_000_000_000,
        182_640_000_000,
        2_000_000_000,
    )
    assert (quote.bid_venue, quote.ask_venue, quote.conditions) == ("V", "Q", ("R",))
    assert not out.control


def test_json_numbers_never_pass_through_float() -> None:
    out = parse(
        [{"T": "t", "S": "BTC/USD", "p": 1, "s": 1, "t": "2024-02-26T16:00:00Z", "i": 1, "tks": "B"}],
        "crypto.us",
    )
    assert out.records[0].price == 10**9
    raw = (
        b'[{"T":"t","S":"BTC/USD","p":0.30000000000000004,"s":12345678901.123456789,'
        b'"t":"2024-02-26T16:00:00.1Z","i":1,"tks":"B"}]'
    )
    with pytest.raises(ParseError, match="more than 9 decimals"):
        PARSER.parse(raw, env("crypto.us"), PARSER.new_state())
    raw = raw.replace(b"0.30000000000000004", b"0.300000000")
    t = PARSER.parse(raw, env("crypto.us"), PARSER.new_state()).records[0]
    assert isinstance(t, Trade)
    assert (t.price, t.size, t.side, t.side_rule) == (
        300_000_000,
        12_345_678_901_123_456_789,
        "buy",
        "vendor",
    )


def test_stock_session_fixture() -> None:
    state = PARSER.new_state()
    recs, controls = [], 0
    for _line, payload, stream, ts_recv in session("stocks-iex.session.txt"):
        assert stream == "stocks.iex"
        out = PARSER.parse(payload, env(stream or "", ts_recv=ts_recv or 0), state)
        recs += out.records
        controls += out.control
    assert controls == 5  # connected, authenticated, subscription, status-only, error
    assert [type(r).__name__ for r in recs].count("Trade") == 5
    bars = [r for r in recs if isinstance(r, Bar)]
    assert [(b.timeframe, b.correction) for b in bars] == [("1m", False), ("1m", True), ("1d", False)]
    assert bars[0].ts_event == rfc3339_to_ns("2024-02-26T16:00:00Z") == 1_708_963_200_000_000_000
    assert (bars[0].vwap, bars[0].trade_count, bars[0].volume) == (182_641_203_000, 57, 4521 * 10**9)
    assert state.skipped["s"] == 1
    assert state.errors[-1]["code"] == 405
    brk = [r for r in recs if r.symbol == "BRK.B"]
    assert [r.price for r in brk] == [408_100_000_000, 408_099_900_000]  # type: ignore[union-attr]
    assert recs[-1].ts_event == 1_708_963_321_729_300_000


def test_crypto_session_fixture() -> None:
    state = PARSER.new_state()
    recs = []
    for _line, payload, stream, ts_recv in session("crypto-us.session.txt"):
        recs += PARSER.parse(payload, env(stream or "", ts_recv=ts_recv or 0), state).records
    book = recs[0]
    assert isinstance(book, BookUpdate) and book.snapshot
    assert book.bids[0] == Level(72_101_450_000_000, 271_300_000)
    assert book.asks[2] == Level(72_110_000_000_000, 2_100_000_000)
    diff = recs[4]
    assert isinstance(diff, BookUpdate) and not diff.snapshot
    assert diff.bids == (Level(72_100_100_000_000, 0),)
    assert diff.asks[1] == Level(72_105_900_000_000, 10)
    big = recs[5]
    assert isinstance(big, Trade)
    assert big.size == 12_345_678_901_123_456_789  # beyond int64, exact
    assert big.ts_event == 1_710_239_269_599_999_999
    assert state.skipped["unknown:x-new"] == 1
    assert {r.asset_class for r in recs} == {"crypto"}


def test_msgpack_frames() -> None:
    frames = list(msgpack.Unpacker(open(FIX / "crypto-us.msgpack", "rb"), raw=False, timestamp=0))  # noqa: SIM115
    assert frames
    data = (FIX / "crypto-us.msgpack").read_bytes()
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(data)
    offsets, start = [], 0
    for _ in unpacker:
        offsets.append((start, unpacker.tell()))
        start = unpacker.tell()
    state = PARSER.new_state()
    e = Envelope("alpaca", "crypto.us", 1, 1, 1_710_239_300_000_000_000, "msgpack")
    outs = [PARSER.parse(data[a:b], e, state) for a, b in offsets]
    assert outs[0].control
    trade, quote = outs[1].records
    assert isinstance(trade, Trade) and isinstance(quote, Quote)
    assert (trade.price, trade.size, trade.ts_event, trade.side) == (
        72_104_120_000_000,
        194_000,
        1_710_239_268_858_228_144,
        "sell",
    )
    assert quote.ask_price == 72_106_215_000_000
    bar = outs[2].records[0]
    assert isinstance(bar, Bar) and bar.vwap == 4_024_100_000_000


def test_msgpack_option_trade() -> None:
    data = (FIX / "options-opra.msgpack").read_bytes()
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(data)
    next(unpacker)
    first = data[: unpacker.tell()]
    out = PARSER.parse(
        first, Envelope("alpaca", "options.opra", 1, 1, 1_765_900_900 * 10**9, "msgpack"), PARSER.new_state()
    )
    t = out.records[0]
    assert isinstance(t, Trade)
    assert (t.symbol, t.asset_class, t.underlying, t.expiry, t.right, t.strike) == (
        "SPY251216C00676000",
        "option",
        "SPY",
        dt.date(2025, 12, 16),
        "C",
        676_000_000_000,
    )
    assert (t.price, t.size, t.conditions, t.ts_event) == (
        1_230_000_000,
        10 * 10**9,
        ("I",),
        1_765_900_800_123_456_789,
    )


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        ([{"T": "t", "S": "AAPL", "p": 1, "s": -1, "t": "2024-02-26T16:00:00Z"}], "negative"),
        ([{"T": "t", "S": "", "p": 1, "s": 1, "t": "2024-02-26T16:00:00Z"}], "empty symbol"),
        ([{"T": "t", "S": "AAPL", "p": 1, "s": 1, "t": "1980-02-26T16:00:00Z"}], "sane window"),
        ([{"T": "t", "S": "AAPL", "p": 1, "s": 1, "t": "2024-02-28T16:00:00Z"}], "sane window"),
        ([{"T": "t", "S": "AAPL", "p": 1, "s": 1, "t": "2024-02-26 garbage"}], "RFC 3339"),
        ([{"T": "t", "S": "AAPL", "p": 1, "t": "2024-02-26T16:00:00Z"}], "malformed"),
        ([{"T": "zz", "S": "AAPL"}], "only unknown"),
        ({"not": "a list"}, "only unknown"),
        ([1, 2], "array of objects"),
    ],
)
def test_invalid_frames_rejected(frame: object, match: str) -> None:
    with pytest.raises(ParseError, match=match):
        parse(frame)


@pytest.mark.parametrize(
    "raw",
    [
        b'[{"T":"t","S":"AAPL","p":NaN,"s":1,"t":"2024-02-26T16:00:00Z"}]',
        b'[{"T":"t","S":"AAPL","p":Infinity,"s":1,"t":"2024-02-26T16:00:00Z"}]',
        b"not json",
        b"",
    ],
)
def test_non_finite_and_garbage(raw: bytes) -> None:
    with pytest.raises(ParseError):
        PARSER.parse(raw, env(), PARSER.new_state())


def test_msgpack_nan_rejected() -> None:
    raw = msgpack.packb(
        [
            {
                "T": "q",
                "S": "BTC/USD",
                "bp": float("nan"),
                "bs": 1.0,
                "ap": 1.0,
                "as": 1.0,
                "t": msgpack.Timestamp(1_708_963_200, 0),
            }
        ]
    )
    with pytest.raises(ParseError, match="non-finite"):
        PARSER.parse(raw, env("crypto.us", "msgpack"), PARSER.new_state())


def test_control_frames() -> None:
    state = PARSER.new_state()
    assert parse([{"T": "success", "msg": "authenticated"}], state=state).control
    out = parse([{"T": "error", "code": 406, "msg": "connection limit exceeded"}], state=state)
    assert out.control and not out.records
    assert state.errors == [{"T": "error", "code": 406, "msg": "connection limit exceeded"}]


def test_rfc3339() -> None:
    assert rfc3339_to_ns("2021-02-22T15:51:44.208Z") == 1_614_009_104_208_000_000
    assert rfc3339_to_ns("2021-02-22T15:51:44.208123456Z") == 1_614_009_104_208_123_456
    assert rfc3339_to_ns("2021-02-22T10:51:44.000000001-05:00") == 1_614_009_104_000_000_001
    assert rfc3339_to_ns("1970-01-01T00:00:00Z") == 0
    for bad in (
        "2021-02-30T00:00:00Z",
        "2021-02-22T15:51:44.1234567890Z",
        "2021-02-22T24:00:00Z",
        "2021-02-22T15:51:44",
        "2021-02-22T15:51:44.Z",
        "2021/02/22T15:51:44Z",
    ):
        with pytest.raises(ValueError):
            rfc3339_to_ns(bad)


def test_option_symbols() -> None:
    o = parse_option("O:SPY251216C00676000")
    assert (o.symbol, o.underlying, o.expiry, o.right, o.strike) == (
        "SPY251216C00676000",
        "SPY",
        dt.date(2025, 12, 16),
        "C",
        676_000_000_000,
    )
    assert parse_option("SPY   251216P00676500").strike == 676_500_000_000
    assert parse_option("AAPL240315C00172500").symbol == "AAPL240315C00172500"


def test_stream_for_url() -> None:
    assert PARSER.stream_for_url("wss://stream.data.alpaca.markets/v2/iex") == "stocks.iex"
    assert PARSER.stream_for_url("wss://stream.data.alpaca.markets/v2/sip") == "stocks.sip"
    assert PARSER.stream_for_url("wss://stream.data.alpaca.markets/v1beta3/crypto/us") == "crypto.us"
    assert PARSER.stream_for_url("wss://stream.data.alpaca.markets/v1beta1/opra") == "options.opra"


def test_conditions_cache_keeps_text_and_non_text_apart() -> None:
    """Condition lists are cached by value; 1 == True and hash alike, so only all-text lists are cached and
    a list holding numbers or booleans is converted every time, never answered from a text entry."""
    from tickwire.vendors.alpaca.parser import _conditions

    assert _conditions(["@", "T"]) == ("@", "T")
    assert _conditions(["@", "T"]) == ("@", "T")  # from the cache
    assert _conditions(["1"]) == ("1",)
    assert _conditions([1]) == ("1",)
    assert _conditions([True]) == ("True",)
    assert _conditions([True]) == ("True",)
    assert _conditions([[1]]) == ("[1]",)  # unhashable: converted, not cached
    assert _conditions("I") == ("I",) and _conditions(None) == () and _conditions([]) == ()
