"""5 s vendor bars -> 1-minute bars by event time: values, closing rule, repeats, lateness, determinism,
and the pipeline hook (state in the partition store, rebuilt after ``forget_partition``)."""

from __future__ import annotations

import random
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from tickwire.contract import routing
from tickwire.contract.codec import Codec
from tickwire.contract.envelope import Envelope, context_header
from tickwire.contract.records import Bar
from tickwire.normalize import rollup
from tickwire.normalize.derive import DERIVED_SUB_SEQ, Derived
from tickwire.normalize.pipeline import Pipeline, RawMessage
from tickwire.normalize.state import MemoryStore
from tickwire.vendors.ibkr.parser import PARSER

E9 = 10**9
M0 = 1_765_000_020 * E9  # a minute boundary (1765000020 % 60 == 0)
CODEC = Codec()


def bar5(start_s: int, o: str, h: str, lo: str, c: str, v: str, wap: str, n: int, seq: int = 1) -> Bar:
    u = lambda t: int(Decimal(t) * E9)  # noqa: E731
    return Bar(
        symbol="SPY", asset_class="equity", source="ibkr", venue="SMART", stream="tws.1", session=1, seq=seq,
        ts_event=start_s * E9, ts_recv=(start_s + 5) * E9, timeframe="5s", open=u(o), high=u(h), low=u(lo),
        close=u(c), volume=u(v), vwap=u(wap), trade_count=n,
    )  # fmt: skip


def random_bars(rng: random.Random, minutes: int) -> list[tuple[int, str, str, str, str, str, str, int]]:
    out = []
    base = M0 // E9
    for i in range(minutes * 12):
        o = Decimal(600) + Decimal(rng.randrange(-500, 500)) / 100
        c = o + Decimal(rng.randrange(-50, 50)) / 100
        h = max(o, c) + Decimal(rng.randrange(0, 20)) / 100
        lo = min(o, c) - Decimal(rng.randrange(0, 20)) / 100
        wap = (lo + h) / 2
        out.append(
            (
                base + 5 * i,
                str(o),
                str(h),
                str(lo),
                str(c),
                str(rng.randrange(0, 5000)),
                str(wap),
                rng.randrange(0, 40),
            )
        )
    return out


def expected_minutes(rows: list[tuple[int, str, str, str, str, str, str, int]]) -> list[dict[str, Any]]:
    """Independent: group rows by minute with Decimal arithmetic."""
    groups: dict[int, list[Any]] = {}
    for r in rows:
        groups.setdefault(r[0] - r[0] % 60, []).append(r)
    out = []
    for m, rs in sorted(groups.items()):
        vol = sum(Decimal(r[5]) for r in rs)
        pv = sum(Decimal(r[6]) * Decimal(r[5]) for r in rs)
        vwap = None if vol == 0 else int((pv / vol * E9).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
        out.append({
            "ts_event": m * E9, "open": int(Decimal(rs[0][1]) * E9), "close": int(Decimal(rs[-1][4]) * E9),
            "high": max(int(Decimal(r[2]) * E9) for r in rs), "low": min(int(Decimal(r[3]) * E9) for r in rs),
            "volume": int(vol * E9), "vwap": vwap, "trade_count": sum(r[7] for r in rs),
        })  # fmt: skip
    return out


def fold(bars: list[Bar]) -> tuple[list[Bar], int]:
    st = rollup.SymbolBars()
    step = rollup.RollupStep()
    for b in bars:
        rollup.add(st, b, step)
    return step.closed, step.late


def test_minute_bars_equal_an_independent_computation() -> None:
    rows = random_bars(random.Random(3), 4)
    closed, late = fold([bar5(*r, seq=i + 1) for i, r in enumerate(rows)])
    assert late == 0
    want = expected_minutes(rows)
    got = [{k: getattr(b, k) for k in want[0]} for b in closed]
    assert got == want  # the 4th minute closes with its :55 bar (its end reaches the window end)
    assert all(b.timeframe == "1m" and b.origin == "aggregated" and b.venue == "SMART" for b in closed)
    assert closed[0].seq == 12 and closed[0].ts_recv == (M0 // E9 + 60) * E9  # provenance: last constituent


def test_window_closes_only_when_event_time_reaches_its_end() -> None:
    base = M0 // E9
    closed, _ = fold([bar5(base + 5 * i, "1", "1", "1", "1", "1", "1", 1) for i in range(11)])
    assert closed == []  # the :55 bar has not come: still open
    closed, _ = fold(
        [bar5(base, "1", "2", "1", "2", "1", "1", 1), bar5(base + 70, "3", "3", "3", "3", "1", "3", 1)]
    )
    assert [b.ts_event for b in closed] == [M0]  # a later minute's bar closes the earlier one


def test_repeated_bar_replaces_and_late_bar_is_left_out() -> None:
    base = M0 // E9
    bars = [
        bar5(base, "10", "11", "9", "10", "100", "10", 5),
        bar5(base, "10", "12", "9", "11", "150", "11", 6),  # re-sent (resubscribe): replaces, not added
        bar5(base + 55, "11", "11", "11", "11", "10", "11", 1),
        bar5(base + 50, "11", "11", "11", "11", "10", "11", 1),  # its minute is closed: late
    ]
    closed, late = fold(bars)
    (m,) = closed
    assert (m.high, m.volume, m.trade_count, m.close, late) == (12 * E9, 160 * E9, 7, 11 * E9, 1)


def test_deterministic_for_the_same_input() -> None:
    rows = random_bars(random.Random(9), 3)
    a = fold([bar5(*r) for r in rows])
    b = fold([bar5(*r) for r in rows])
    assert a == b


def _raw(seq: int, payload: bytes) -> RawMessage:
    ctx = {"server_version": 176, "req_id": 6, "symbol": "SPY", "exchange": "SMART", "kind": "bars5s"}
    env = Envelope("ibkr", "tws.1", 1, seq, M0 + 10**12, "tws", context=context_header(ctx)[1].decode())
    return RawMessage("ibkr.raw", 0, seq, b"SPY", payload, env.to_headers())


def test_pipeline_hook_persists_state_and_survives_forget() -> None:
    rows = random_bars(random.Random(5), 2)
    pipe = Pipeline(
        get_parser=lambda _s: PARSER,
        encode=CODEC.encode,
        topic_for=routing.topic_for,
        key_for=routing.key_for,
        derived=Derived(rollup_sources=frozenset({"ibkr"})),
    )
    store = MemoryStore()
    minute_bars = []
    for i, r in enumerate(rows):
        payload = b"".join(str(f).encode() + b"\0" for f in (50, 3, 6, *r))
        res = pipe.process(_raw(i + 1, payload), store)
        assert res.status == "ok"
        minute_bars += [CODEC.decode(o.value) for o in res.outputs if o.topic == "stock_bars_staging"]
        if i == 5:
            pipe.forget_partition("ibkr.raw", 0)  # as after an aborted cycle: rebuilt from the store
            assert any(k.startswith(b"m|ibkr|SPY") for k in store.data)
    got = [b for b in minute_bars if b.timeframe == "1m"]
    want = expected_minutes(rows)
    assert [{k: getattr(b, k) for k in want[0]} for b in got] == want
    assert len([b for b in minute_bars if b.timeframe == "5s"]) == len(rows)
    # A minute bar never takes the identity of the 5 s bar (same raw record) that closed it.
    assert all(b.sub_seq == DERIVED_SUB_SEQ for b in got)
    assert len({(b.seq, b.sub_seq) for b in minute_bars}) == len(minute_bars)


def test_flush_closes_the_open_minute_with_its_values_and_later_bars_of_it_are_late() -> None:
    rows = random_bars(random.Random(11), 2)[:17]  # one whole minute and 5 bars of the next
    st, step = rollup.SymbolBars(), rollup.RollupStep()
    for i, r in enumerate(rows):
        rollup.add(st, bar5(*r, seq=i + 1), step)
    assert len(step.closed) == 1
    partial = rollup.flush(st)
    want = expected_minutes(rows)[1]
    assert [{k: getattr(b, k) for k in want} for b in partial] == [want]
    assert partial[0].symbol == "SPY" and partial[0].asset_class == "equity" and partial[0].source == "ibkr"
    assert rollup.flush(st) == [] and st.windows == {}
    late = rollup.RollupStep()
    rollup.add(st, bar5(rows[-1][0] + 5, "1", "1", "1", "1", "1", "1", 1), late)  # its minute was flushed
    assert late.late == 1 and late.closed == []


def test_session_end_marker_publishes_the_open_minute_and_is_not_parsed() -> None:
    from tickwire.contract.envelope import SESSION_END

    rows = random_bars(random.Random(12), 1)[:7]  # an open minute only
    pipe = Pipeline(
        get_parser=lambda _s: PARSER,
        encode=CODEC.encode,
        topic_for=routing.topic_for,
        key_for=routing.key_for,
        derived=Derived(rollup_sources=frozenset({"ibkr"})),
    )
    store = MemoryStore()
    for i, r in enumerate(rows):
        payload = b"".join(str(f).encode() + b"\0" for f in (50, 3, 6, *r))
        assert all(o.topic != "stock_bars_staging" or CODEC.decode(o.value).timeframe == "5s"
                   for o in pipe.process(_raw(i + 1, payload), store).outputs)  # fmt: skip
    ctx = context_header({"kind": SESSION_END})[1].decode()
    env = Envelope("ibkr", "tws.1", 1, len(rows) + 1, M0 + 10**12, "text", context=ctx)
    res = pipe.process(RawMessage("ibkr.raw", 0, len(rows) + 1, b"tws.1", b"", env.to_headers()), store)
    assert res.status == "ok"
    (bar,) = [CODEC.decode(o.value) for o in res.outputs]
    want = expected_minutes(rows)[0]
    assert {k: getattr(bar, k) for k in want} == want and bar.timeframe == "1m"
    again = pipe.process(RawMessage("ibkr.raw", 0, len(rows) + 2, b"tws.1", b"", env.to_headers()), store)
    assert again.status == "duplicate" and again.outputs == []  # a replayed marker changes nothing
