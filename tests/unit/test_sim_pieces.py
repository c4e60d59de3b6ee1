"""Pure pieces of the simulators: formats, pacing, recordings, generated books, Alpaca encoding, CLI."""

from __future__ import annotations

import asyncio
import json
import random
from decimal import Decimal

import msgpack

from tickwire.recording import load_recording
from tickwire.simulators import cli
from tickwire.simulators.market import fmt_fixed, fmt_trim, iso_us, paced, rfc3339_ns
from tickwire.vendors.alpaca.simulator import encode
from tickwire.vendors.binance.market import SymbolBook
from tickwire.vendors.coinbase.simulator import Product

REC = "/work/shared/data/recorded/"


def test_decimal_formats_are_exact() -> None:
    assert fmt_fixed(1502500, 4) == "150.2500"
    assert fmt_trim(1502500, 4) == "150.25"
    assert fmt_trim(1500000, 4) == "150"
    assert fmt_fixed(1, 8) == "0.00000001"
    assert fmt_fixed(-5, 2) == "-0.05"


def test_time_formats() -> None:
    ns = 1735830245123456789
    assert rfc3339_ns(ns) == "2025-01-02T15:04:05.123456789Z"
    assert iso_us(ns) == "2025-01-02T15:04:05.123456Z"
    assert rfc3339_ns(1735830245000000001) == "2025-01-02T15:04:05.000000001Z"


def test_alpaca_json_numbers_have_no_float_noise() -> None:
    event = {"T": "t", "S": "X", "p": Decimal("0.1") + Decimal("0.2"), "s": Decimal("0.00000001"), "t": 1}
    assert (
        encode([event], binary=False)
        == b'[{"T":"t","S":"X","p":0.3,"s":0.00000001,"t":"1970-01-01T00:00:00.000000001Z"}]'
    )


def test_alpaca_msgpack_uses_timestamp_ext() -> None:
    ns = 1735830245123456789
    decoded = msgpack.unpackb(encode([{"T": "q", "S": "X", "bp": Decimal("150.25"), "t": ns}], binary=True))
    assert decoded[0]["bp"] == 150.25
    assert isinstance(decoded[0]["t"], msgpack.Timestamp) and decoded[0]["t"].to_unix_nano() == ns


def test_load_recordings() -> None:
    b = load_recording(REC + "cryptofeed-BINANCE.ws.1.0", REC + "cryptofeed-BINANCE.0")
    assert b.url.startswith("wss://stream.binance.com:9443/stream?streams=nknusdt@depth@100ms/")
    assert len(b.frames) == 265 and b.client == []
    assert b.frames[0][1].startswith(b'{"stream":"nknusdt@depth@100ms","data":{"e":"depthUpdate"')
    assert b.frames[0][0] == 1633998512.0633569
    assert json.loads(b.rest["https://api.binance.com/api/v3/exchangeInfo"])["timezone"] == "UTC"
    c = load_recording(REC + "cryptofeed-COINBASE.ws.28.0")
    assert [json.loads(p)["channels"] for _, p in c.client] == [["level2"], ["ticker"], ["matches"]]
    assert json.loads(c.frames[0][1])["type"] == "subscriptions"


def test_paced_is_open_loop() -> None:
    """A consumer slower than the rate still gets every scheduled event (the backlog), not fewer."""

    async def run() -> int:
        total = 0
        loop = asyncio.get_running_loop()
        end = loop.time() + 0.3
        async for due in paced(1000.0):
            total += due
            await asyncio.sleep(0.05)  # slow consumer
            if loop.time() >= end:
                return total
        return total

    total = asyncio.run(run())
    assert 250 <= total <= 420


def test_binance_book_diffs_are_continuous_and_skip_jumps() -> None:
    book = SymbolBook("BTCUSDT", 30_000 * 10**8, 10**6, random.Random(1))
    start = book.update_id
    for _ in range(50):
        book.book_change(skip=False)
    ((_, d1),) = book.flush("100ms", 1)
    assert d1["U"] == start + 1 and d1["u"] == book.update_id
    book.book_change(skip=False)
    ((_, d2),) = book.flush("100ms", 2)
    assert d2["U"] == d1["u"] + 1
    book.book_change(skip=True)
    ((_, d3),) = book.flush("100ms", 3)
    assert d3["U"] > d2["u"] + 1
    ((_, slow),) = book.flush("1000ms", 4)  # the 1000 ms stream coalesces everything since its own last flush
    assert (slow["U"], slow["u"]) == (d1["U"], d3["u"])
    assert book.flush("100ms", 5) == []
    snap = book.snapshot(5)
    assert snap["lastUpdateId"] == book.update_id and len(snap["bids"]) == 5
    assert float(snap["bids"][0][0]) < float(snap["asks"][0][0])


def test_binance_klines_close_on_interval() -> None:
    book = SymbolBook("BTCUSDT", 30_000 * 10**8, 10**6, random.Random(2))
    out = book.trade(1_000_500, {"1s"})
    kline = next(d for s, d in out if s == "btcusdt@kline_1s")["k"]
    assert (kline["t"], kline["T"], kline["x"], kline["n"]) == (1_000_000, 1_000_999, False, 1)
    assert book.roll(1_000_999, "1s") == []
    ((_, closed),) = book.roll(1_001_000, "1s")
    assert closed["k"]["x"] is True and closed["k"]["o"] == kline["o"]


def test_coinbase_match_side_is_maker_and_ticker_is_taker() -> None:
    p = Product("BTC-USD", 5_000_000, 2, random.Random(3))
    m, t = p.match(1_618_677_817_056_746_000, skip=False)
    assert m["type"] == "match" and t["type"] == "ticker"
    assert {m["side"], t["side"]} == {"buy", "sell"}
    assert m["sequence"] == t["sequence"] and m["trade_id"] == t["trade_id"]
    assert m["time"] == "2021-04-17T16:43:37.056746Z"
    # maker sells at the best ask, maker buys at the best bid
    best = min(p.asks) if m["side"] == "sell" else max(p.bids)
    assert Decimal(m["price"]) == Decimal(best) / 100


def test_cli_builds_replay_simulators_from_shared_recordings() -> None:
    args = cli.parser().parse_args(["binance", "--mode", "replay", "--speed", "0"])
    sim = cli.build(args)
    assert sim.name == "binance" and len(sim.recording.frames) == 265  # type: ignore[attr-defined]
    args = cli.parser().parse_args(["alpaca", "--rate", "5", "--symbols", "AAPL", "--batch", "3"])
    alpaca = cli.build(args)
    assert alpaca.name == "alpaca" and alpaca.symbols == ["AAPL"] and alpaca.batch == 3  # type: ignore[attr-defined]
