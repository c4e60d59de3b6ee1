"""Event-time 1-minute bars: exact windows, lateness, vwap, determinism."""

from __future__ import annotations

import msgspec
import pytest

from tickwire.contract.exact import parse_units
from tickwire.contract.records import Bar, Trade
from tickwire.normalize.bars import MINUTE_NS, BarAggregator, PartitionBars, vwap, window_start

T0 = 1_700_000_040_000_000_000  # a minute boundary (divisible by 60 s)
S = 1_000_000_000


def trade(sym: str, ts: int, price: str, size: str, seq: int = 1, venue: str | None = "X") -> Trade:
    return Trade(
        symbol=sym,
        asset_class="crypto",
        source="fake",
        venue=venue,
        stream="s",
        session=7,
        seq=seq,
        ts_event=ts,
        ts_recv=ts + 5,
        price=parse_units(price),
        size=parse_units(size),
    )


def run(trades: list[Trade], lateness: int = 0) -> tuple[list[Bar], int, PartitionBars]:
    agg, st = BarAggregator(lateness), PartitionBars()
    bars, late = [], 0
    for t in trades:
        step = agg.on_trade(st, t)
        bars += step.closed
        late += step.late
    return bars, late, st


def test_minute_boundary_is_exact_to_the_ns() -> None:
    assert T0 % MINUTE_NS == 0
    assert window_start(T0) == T0
    assert window_start(T0 + MINUTE_NS - 1) == T0
    assert window_start(T0 + MINUTE_NS) == T0 + MINUTE_NS
    bars, _, st = run(
        [
            trade("A", T0, "10", "1"),
            trade("A", T0 + MINUTE_NS - 1, "12", "1"),  # last ns of the first window
            trade("A", T0 + MINUTE_NS, "20", "1"),  # first ns of the next: closes the first (lateness 0)
        ]
    )
    assert len(bars) == 1
    b = bars[0]
    assert (b.ts_event, b.open, b.close, b.volume, b.trade_count) == (
        T0,
        parse_units("10"),
        parse_units("12"),
        parse_units("2"),
        2,
    )
    assert (b.timeframe, b.origin, b.symbol, b.source) == ("1m", "aggregated", "A", "fake")
    assert list(st.bars["A"]) == [T0 + MINUTE_NS]


def test_window_closes_only_at_end_plus_lateness() -> None:
    lat = 2 * S
    agg, st = BarAggregator(lat), PartitionBars()
    assert agg.on_trade(st, trade("A", T0 + S, "1", "1")).closed == []
    assert agg.on_trade(st, trade("A", T0 + MINUTE_NS + lat - 1, "1", "1")).closed == []
    step = agg.on_trade(st, trade("A", T0 + MINUTE_NS + lat, "1", "1"))
    assert [b.ts_event for b in step.closed] == [T0]


def test_late_trade_is_counted_and_left_out() -> None:
    bars, late, st = run(
        [
            trade("A", T0 + S, "10", "1"),
            trade("A", T0 + MINUTE_NS + S, "11", "1"),  # closes [T0, T0+60s)
            trade("A", T0 + 30 * S, "99", "5"),  # late for the closed window
            trade("A", T0 + 2 * MINUTE_NS, "12", "1"),
        ]
    )
    assert late == 1
    assert [(b.ts_event, b.high, b.volume) for b in bars] == [
        (T0, parse_units("10"), parse_units("1")),
        (T0 + MINUTE_NS, parse_units("11"), parse_units("1")),
    ]
    assert st.watermark == T0 + 2 * MINUTE_NS


def test_out_of_order_within_open_window_with_lateness() -> None:
    bars, late, _ = run(
        [
            trade("A", T0 + 10 * S, "5", "1"),
            trade("A", T0 + 59 * S, "7", "1"),
            trade("A", T0 + MINUTE_NS + S, "8", "1"),  # watermark past the window, inside lateness
            trade("A", T0 + 2 * S, "3", "1"),  # earlier than the open: becomes the open, still counted
            trade("A", T0 + MINUTE_NS + 6 * S, "9", "1"),  # closes [T0, +60s) with lateness 5 s
        ],
        lateness=5 * S,
    )
    assert late == 0
    b = bars[0]
    assert (b.open, b.high, b.low, b.close, b.trade_count) == (
        parse_units("3"),
        parse_units("7"),
        parse_units("3"),
        parse_units("7"),
        3,
    )


def test_partition_watermark_closes_quiet_symbols_in_order() -> None:
    bars, _, _ = run(
        [
            trade("B", T0 + S, "2", "1"),
            trade("A", T0 + 2 * S, "1", "1"),
            trade("C", T0 + MINUTE_NS, "3", "1"),  # C's trade moves the partition clock: A and B close
        ]
    )
    assert [(b.ts_event, b.symbol) for b in bars] == [(T0, "A"), (T0, "B")]


def test_vwap_exact_and_half_even() -> None:
    assert vwap(
        parse_units("10") * parse_units("1") + parse_units("20") * parse_units("3"), parse_units("4")
    ) == (parse_units("17.5"))
    assert vwap(5, 2) == 2  # 2.5 -> 2 (even)
    assert vwap(7, 2) == 4  # 3.5 -> 4 (even)
    assert vwap(8, 3) == 3  # 2.666 -> 3
    assert vwap(0, 0) is None
    bars, _, _ = run(
        [
            trade("A", T0, "0.000000001", "1"),
            trade("A", T0 + 1, "0.000000002", "2"),
            trade("A", T0 + MINUTE_NS, "1", "1"),
        ]
    )
    # sum(p*s) = 1e-9*1 + 2e-9*2 = 5e-9 over volume 3 -> 1.666e-9 -> 2e-9
    assert bars[0].vwap == 2


def test_mixed_venues_give_no_venue() -> None:
    bars, _, _ = run(
        [
            trade("A", T0, "1", "1", venue="X"),
            trade("A", T0 + 1, "1", "1", venue="Y"),
            trade("B", T0 + 2, "1", "1", venue="X"),
            trade("A", T0 + MINUTE_NS, "1", "1"),
        ]
    )
    assert {b.symbol: b.venue for b in bars} == {"A": None, "B": "X"}


def _stream(n: int) -> list[Trade]:
    out = []
    for i in range(n):
        ts = T0 + (i * 7_919_000_003) % (5 * MINUTE_NS) + (i // 40) * MINUTE_NS  # jumbled, mostly rising
        out.append(
            trade("ABC"[i % 3], ts, f"{100 + (i * 37) % 17}.{i % 1000:03d}", f"0.{(i * 13) % 97 + 1}", seq=i)
        )
    return out


def test_same_input_gives_identical_bars_and_state_round_trips() -> None:
    trades = _stream(400)
    a = run(trades, lateness=3 * S)
    b = run(trades, lateness=3 * S)
    assert a[0] == b[0] and a[1] == b[1]
    assert len(a[0]) > 10 and a[1] > 0  # the stream really closes bars and has late trades
    # Interrupt half-way, persist the state as the app does (JSON), continue: same bars.
    agg = BarAggregator(3 * S)
    st = PartitionBars()
    bars: list[Bar] = []
    for i, t in enumerate(trades):
        if i == 200:
            st = msgspec.json.decode(msgspec.json.encode(st), type=PartitionBars)
        bars += agg.on_trade(st, t).closed
    assert bars == a[0]


def test_negative_lateness_rejected() -> None:
    with pytest.raises(ValueError):
        BarAggregator(-1)
