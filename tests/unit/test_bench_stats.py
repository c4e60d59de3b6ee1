"""Pure helpers of `tickwire bench`: percentile maths, rates, drain windows, targets, result assembly."""

from __future__ import annotations

import math

import pytest

from tickwire.bench.common import normalizer_counters
from tickwire.bench.env import summarize_collapsed
from tickwire.bench.stats import (
    Target,
    assemble,
    drain_window,
    evaluate,
    lag_grows,
    percentile,
    rate,
    render_markdown,
    rss_summary,
    summarize,
)


def test_percentile_nearest_rank() -> None:
    data = [float(i) for i in range(1, 101)]  # 1..100
    assert percentile(data, 50) == 50.0
    assert percentile(data, 99) == 99.0
    assert percentile(data, 99.9) == 100.0  # ceil(99.9) = 100th value, never interpolated
    assert percentile(data, 100) == 100.0
    assert percentile(data, 0) == 1.0
    assert percentile([7.0], 99.9) == 7.0
    assert math.isnan(percentile([], 50))


def test_percentile_small_sample_is_an_observed_value() -> None:
    data = [1.0, 2.0, 10.0]
    assert percentile(data, 50) == 2.0
    assert percentile(data, 90) == 10.0
    assert percentile(data, 34) == 2.0  # ceil(1.02) = 2nd value


def test_summarize_sorts_and_reports() -> None:
    s = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert s["count"] == 5
    assert s["min"] == 1.0 and s["max"] == 5.0
    assert s["mean"] == 3.0
    assert s["p50"] == 3.0
    assert s["p99.9"] == 5.0
    assert summarize([]) == {"count": 0}


def test_rate() -> None:
    assert rate(1000, 2.0) == 500.0
    assert rate(10, 0) == 0.0
    assert rate(10, -1) == 0.0


def test_drain_window_from_first_increase_to_target() -> None:
    samples = [(0.0, 0.0), (1.0, 0.0), (2.0, 100.0), (3.0, 300.0), (4.0, 500.0), (5.0, 500.0)]
    w = drain_window(samples, 500)
    assert w is not None
    assert (w.start, w.end, w.count) == (1.0, 4.0, 500.0)
    assert w.rate == pytest.approx(500 / 3)


def test_drain_window_without_target_uses_last_value_and_counts_from_base() -> None:
    samples = [(10.0, 40.0), (11.0, 40.0), (12.0, 90.0), (13.0, 140.0)]
    w = drain_window(samples)
    assert w is not None
    assert (w.start, w.end, w.count) == (11.0, 13.0, 100.0)


def test_drain_window_target_not_reached_stops_at_last() -> None:
    w = drain_window([(0.0, 0.0), (1.0, 10.0), (2.0, 20.0)], 1000)
    assert w is not None
    assert (w.end, w.count) == (2.0, 20.0)


def test_drain_window_none_when_counter_never_moves() -> None:
    assert drain_window([(0.0, 5.0), (1.0, 5.0)]) is None
    assert drain_window([(0.0, 5.0)]) is None


def test_lag_grows() -> None:
    flat = [(float(t), 50.0 + (t % 2) * 30) for t in range(9)]
    assert not lag_grows(flat, rate_per_s=1000)
    growing = [(float(t), 1000.0 * t) for t in range(9)]
    assert lag_grows(growing, rate_per_s=1000)
    assert not lag_grows(growing[:2], rate_per_s=1000)  # too few points to judge


def test_rss_summary() -> None:
    kib = [10_240, 20_480, 30_720, 30_720, 40_960]
    s = rss_summary(kib, hwm_kib=51_200)
    assert s["peak_mib"] == 50.0  # the kernel's high-water mark beats the samples
    assert s["steady_mib"] == 30.0  # median of the second half: 30, 30, 40 MiB
    assert s["samples"] == 5
    assert rss_summary([]) == {}


def test_target_check_both_directions() -> None:
    up = Target("t", "s", "m", ">=", 100, "ev/s")
    assert up.check(150) == {
        "target": "t",
        "value": 150,
        "threshold": ">= 100 ev/s",
        "ratio": 1.5,
        "status": "pass",
    }
    assert up.check(50)["status"] == "miss" and up.check(50)["ratio"] == 0.5
    down = Target("t", "s", "m", "<=", 10, "ms")
    assert down.check(5)["status"] == "pass" and down.check(5)["ratio"] == 2.0
    assert down.check(40)["status"] == "miss" and down.check(40)["ratio"] == 0.25
    assert down.check(None)["status"] == "not measured"
    assert down.check(math.nan)["status"] == "not measured"


def test_evaluate_and_assemble() -> None:
    scenarios = {
        "normalize": {
            "status": "ok",
            "numbers": {"mixed": {"canonical_per_s": 30_000.0, "ratio_to_ceiling": 0.175}},
        },
        "bridges": {"status": "skipped: no bridge"},
    }
    targets = [
        Target("norm", "normalize", "mixed.canonical_per_s", ">=", 60_000, "ev/s"),
        Target("redis", "bridges", "redis.records_per_s", ">=", 60_000, "rec/s"),
        Target("lat", "latency", "main.p50", "<=", 3, "ms"),
    ]
    res = evaluate(scenarios, targets)
    assert res[0]["status"] == "miss" and res[0]["ratio"] == 0.5 and res[0]["scenario"] == "normalize"
    assert res[1]["status"] == "not measured" and res[1]["why"] == "skipped: no bridge"
    assert res[2]["why"] == "not run"
    full = assemble(started="T", machine={"cores": 2}, params={"quick": True}, scenarios=scenarios)
    assert set(full) == {"started", "machine", "params", "scenarios", "targets"}
    assert full["machine"] == {"cores": 2}
    md = render_markdown(full)
    assert "| normalizer share of ceiling | 0.175 | >= 0.35 x | 0.5 | miss |" in md
    assert "### bridges: skipped: no bridge" in md
    assert "| mixed.canonical_per_s | 30,000 |" in md


def test_normalizer_counters_split_canonical_gaps_dlq() -> None:
    samples = {
        "tickwire_normalizer_raw_records_total": [
            ({"topic": "p.binance.raw"}, 10.0),
            ({"topic": "p.x.raw"}, 5.0),
        ],
        "tickwire_normalizer_records_out_total": [
            ({"topic": "p.crypto_trades_realtime"}, 7.0),
            ({"topic": "p.crypto_book_realtime"}, 3.0),
            ({"topic": "p.instrument_definitions"}, 1.0),
            ({"topic": "p.tickwire.gaps"}, 2.0),
            ({"topic": "p.binance.raw.dlq"}, 4.0),
        ],
        "tickwire_normalizer_dlq_total": [({"topic": "p.binance.raw", "error": "ParseError"}, 4.0)],
        "tickwire_normalizer_control_frames_total": [({"topic": "p.binance.raw"}, 6.0)],
    }
    c = normalizer_counters(samples, "p.")
    assert c is not None
    assert (c.raw_in, c.canonical, c.gaps, c.dlq, c.control, c.duplicates) == (15, 11, 2, 4, 6, 0)
    assert normalizer_counters(None, "p.") is None


def test_summarize_collapsed_own_and_total_shares() -> None:
    text = "main;a;b 6\nmain;a;c 3\nmain;d 1\nbroken line\n"
    s = summarize_collapsed(text, top=3)
    assert s["samples"] == 10
    assert s["own_pct"] == [("b", 60.0), ("c", 30.0), ("d", 10.0)]
    assert s["total_pct"][0] == ("main", 100.0)
    assert ("a", 90.0) in s["total_pct"]
    assert summarize_collapsed("") == {"samples": 0}
