"""Edge cases of the exact amount helpers (1e-9 units)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tickwire.contract.exact import (
    MAX_ABS,
    AmountError,
    decimal_to_units,
    float_to_units,
    format_units,
    int_to_units,
    parse_units,
    units_to_decimal,
)


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("25.3519", 25_351_900_000),
        ("25.35190000", 25_351_900_000),
        ("0", 0),
        ("-0", 0),
        ("+1", 1_000_000_000),
        (".5", 500_000_000),
        ("5.", 5_000_000_000),
        ("0.000000001", 1),
        ("-0.000000001", -1),
        ("1.0000000010000", 1_000_000_001),
        ("1e-3", 1_000_000),
        ("-2.5E+2", -250_000_000_000),
        (b"72104.12", 72_104_120_000_000),
        ("  7  ", 7_000_000_000),
        ("12345678901.123456789", 12_345_678_901_123_456_789),
        ("99999999999999999999999999999.999999999", MAX_ABS),
    ],
)
def test_parse_units(text: str | bytes, units: int) -> None:
    assert parse_units(text) == units


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "-",
        ".",
        "abc",
        "1.2.3",
        "1,5",
        "NaN",
        "inf",
        "-Infinity",
        "1e-10",
        "0.0000000001",
        "100000000000000000000000000000",
        "1e29",
        "+-1",
        "١٢",
        "1_000",
        "0x10",
    ],
)
def test_parse_units_rejects(text: str) -> None:
    with pytest.raises(AmountError):
        parse_units(text)


@pytest.mark.parametrize(
    ("units", "text"),
    [
        (25_351_900_000, "25.3519"),
        (0, "0"),
        (-1, "-0.000000001"),
        (10**9, "1"),
        (-(10**18), "-1000000000"),
        (MAX_ABS, "99999999999999999999999999999.999999999"),
        (2**70, "1180591620717.411303424"),
    ],
)
def test_format_units(units: int, text: str) -> None:
    assert format_units(units) == text
    assert parse_units(text) == units


def test_float_to_units_uses_shortest_repr() -> None:
    assert float_to_units(0.1) == 100_000_000
    assert float_to_units(72104.12) == 72_104_120_000_000
    assert float_to_units(1e-9) == 1
    assert float_to_units(-3.0) == -3_000_000_000
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(AmountError):
            float_to_units(bad)
    with pytest.raises(AmountError):
        float_to_units(1e-10)


def test_int_to_units() -> None:
    assert int_to_units(3_720_250_000_000, 9) == 3_720_250_000_000
    assert int_to_units(5) == 5_000_000_000
    assert int_to_units(1234, 2) == 12_340_000_000
    assert int_to_units(10_000, 13) == 1
    with pytest.raises(AmountError):
        int_to_units(1, 10)


def test_decimal_round_trip() -> None:
    assert decimal_to_units(Decimal("1.5")) == 1_500_000_000
    assert units_to_decimal(1_500_000_000) == Decimal("1.5")
    assert units_to_decimal(-1) == Decimal("-1E-9")
    with pytest.raises(AmountError):
        decimal_to_units(Decimal("NaN"))
    with pytest.raises(AmountError):
        decimal_to_units(Decimal("1E+30"))
