"""Strike manager (pure): the window, nearest expiries, the contract cap and hysteresis."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from tickwire.vendors.polygon.simulator import option_ticker
from tickwire.vendors.polygon.strikes import (
    Contract,
    StrikeManager,
    WindowRule,
    contract,
    strike_step,
    window,
)

ONE = 10**9
TODAY = dt.date(2025, 12, 16)
EXPIRIES = [TODAY, dt.date(2025, 12, 17), dt.date(2025, 12, 19), dt.date(2026, 1, 16)]


def grid(
    lo: int = 600, hi: int = 760, step: Decimal = Decimal(1), expiries: list[dt.date] = EXPIRIES
) -> list[Contract]:
    n = int((hi - lo) / step)
    return [
        contract(option_ticker("SPY", e, r, lo + k * step))
        for e in expiries
        for k in range(n + 1)
        for r in "CP"
    ]


def expected(price: Decimal, n: int, k: int, step: Decimal = Decimal(1)) -> frozenset[str]:
    """Independent: strikes within n steps of the nearest listed strike, first k expiries, C and P."""
    near = (price / step).quantize(Decimal(1)) * step
    return frozenset(
        option_ticker("SPY", e, r, near + j * step)
        for e in EXPIRIES[:k]
        for j in range(-n, n + 1)
        for r in "CP"
    )


def test_contract_from_ticker() -> None:
    c = contract("O:SPY251216C00676000")
    assert (c.expiry, c.right, c.strike) == (TODAY, "C", 676 * ONE)


def test_count_window_nearest_expiries_include_0dte() -> None:
    rule = WindowRule(strike_count=3, expiries=2)
    w = window(grid(), 670 * ONE + 400_000_000, rule, TODAY)  # 670.4: nearest strike 670
    assert w == expected(Decimal("670.4"), 3, 2)
    assert len(w) == 7 * 2 * 2 and "O:SPY251216C00670000" in w  # 0DTE listed, included
    later = window(grid(), 670 * ONE, rule, dt.date(2025, 12, 17))  # expired ones drop out
    assert {t[5:11] for t in later} == {"251217", "251219"}


def test_pct_window_and_grid_step() -> None:
    rule = WindowRule(mode="pct", strike_pct=Decimal(1), expiries=1)
    w = window(grid(step=Decimal("2.5")), 670 * ONE, rule, TODAY)
    strikes = sorted({contract(t).strike for t in w})
    assert strikes[0] >= Decimal("663.3") * ONE and strikes[-1] <= Decimal("676.7") * ONE
    assert strikes == [int(Decimal(s) * ONE) for s in ("665", "667.5", "670", "672.5", "675")]
    assert strike_step(grid(step=Decimal("2.5")), 670 * ONE) == 2_500_000_000


def test_cap_keeps_nearest_strikes() -> None:
    rule = WindowRule(strike_count=200, expiries=4, max_contracts=1000)
    w = window(grid(300, 1000), 670 * ONE, rule, TODAY)
    assert len(w) == 1000
    far = max(abs(contract(t).strike - 670 * ONE) for t in w)
    assert far <= 125 * ONE  # 4 expiries x 2 rights x 125 strikes on each side + centre -> nearest 1000


def test_hysteresis_band_no_churn_then_recentre_diff() -> None:
    m = StrikeManager(
        "SPY", WindowRule(strike_count=2, expiries=1, recenter_strikes=Decimal(2)), lambda: TODAY
    )
    assert m.on_price(670 * ONE) is None  # no grid yet
    m.set_grid(grid())
    first = m.on_price(670 * ONE)
    assert (
        first is not None and first.current == expected(Decimal(670), 2, 1) and first.removed == frozenset()
    )
    for px in ("671.9", "668.1", "671.99", "670", "668.01"):  # oscillating inside +/- 2 strikes
        assert m.on_price(int(Decimal(px) * ONE)) is None
    assert m.recentres == 1
    ch = m.on_price(672 * ONE)
    assert ch is not None and ch.current == expected(Decimal(672), 2, 1)
    assert ch.added == expected(Decimal(672), 2, 1) - expected(Decimal(670), 2, 1)
    assert ch.removed == expected(Decimal(670), 2, 1) - expected(Decimal(672), 2, 1)
    assert {contract(t).strike // ONE for t in ch.removed} == {668, 669}
    assert m.on_price(int(Decimal("670.5") * ONE)) is None  # band now around 672


def test_new_listing_recomputes_at_the_same_centre() -> None:
    m = StrikeManager("SPY", WindowRule(strike_count=1, expiries=1), lambda: TODAY)
    m.set_grid(grid(expiries=EXPIRIES[1:]))
    assert m.on_price(670 * ONE) is not None
    ch = m.set_grid(grid())  # a 0DTE expiry appears
    assert ch is not None and {t[5:11] for t in ch.current} == {"251216"}
    assert m.set_grid(grid()) is None  # same listing: nothing changes
