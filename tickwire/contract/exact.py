"""Exact decimal amounts as integers in 1e-9 units ("nanos").

Prices and sizes never pass through binary floats: vendor text goes straight to an int of 1e-9 units.
Python ints have unbounded range, so crypto volumes beyond int64 stay exact; Avro carries them as
decimal(38, 9).
"""

from __future__ import annotations

import re
from decimal import Context, Decimal

# Wide enough that scaleb never rounds anything decimal(38, 9) can hold (default context has 28 digits).
_CTX = Context(prec=80)

SCALE = 9
ONE: int = 10**SCALE
MAX_ABS: int = 10**38 - 1  # decimal(38, 9) limit
# Bounds checked on the text before any big-number arithmetic (``int()`` of a 10**999999 Decimal takes
# seconds): decimal(38, 9) holds at most 29 integer digits, and no real amount text is longer than this.
MAX_TEXT = 128
MAX_INT_DIGITS = 38 - SCALE  # 29


class AmountError(ValueError):
    """An amount that is not a finite decimal representable in 1e-9 units."""


# Successful parses by text. Feeds repeat the same price and size texts constantly (a book's levels, a
# quote's sides), and a dict hit costs a tenth of a parse. Bounded: cleared when full (a pure function's
# cache, so clearing only costs speed). Hot paths may read it directly (``UNITS_CACHE.get(text)``), never
# write it.
UNITS_CACHE: dict[str | bytes, int] = {}
_CACHE = UNITS_CACHE
_CACHE_MAX = 100_000


def parse_units(text: str | bytes) -> int:
    """Parse decimal text ("25.35190000", "-1e-3", "100") into 1e-9 units, exactly.

    Rejects NaN/inf, empty strings and values with non-zero digits beyond the 9th decimal.
    """
    units = _CACHE.get(text)
    if units is None:
        units = _parse_units(text)
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[text] = units
    return units


def _parse_units(text: str | bytes) -> int:
    if len(text) > MAX_TEXT:
        raise AmountError(f"amount text longer than {MAX_TEXT} characters")
    try:
        s = text.decode() if isinstance(text, bytes) else text
    except UnicodeDecodeError:
        raise AmountError(f"not a decimal amount: {text!r}") from None
    # Fast path for the common shape "123.4500": digits, one dot, at most 9 decimals.
    whole, dot, frac = s.partition(".")
    if whole.isdigit() and (not dot or (frac.isdigit() and len(frac) <= SCALE)) and s.isascii():
        units = int(whole + frac.ljust(SCALE, "0")) if dot else int(whole) * ONE
        if units <= MAX_ABS:
            return units
    s = s.strip()
    if not s:
        raise AmountError("empty amount")
    if "e" in s or "E" in s:
        return _parse_via_decimal(s)
    neg = s.startswith("-")
    if neg or s.startswith("+"):
        s = s[1:]
    whole, _dot, frac = s.partition(".")
    if (
        not s.isascii()
        or not (whole or frac)
        or not (whole.isdigit() or whole == "")
        or not (frac.isdigit() or frac == "")
    ):
        raise AmountError(f"not a decimal amount: {text!r}")
    if len(frac) > SCALE:
        extra = frac[SCALE:]
        if extra.strip("0"):
            raise AmountError(f"amount {text!r} has more than {SCALE} decimals")
        frac = frac[:SCALE]
    if len(whole.lstrip("0")) > MAX_INT_DIGITS:
        raise AmountError(f"amount {text!r} exceeds decimal(38, 9)")
    units = int(whole or "0") * ONE + (int(frac.ljust(SCALE, "0")) if frac else 0)
    if units > MAX_ABS:
        raise AmountError(f"amount {text!r} exceeds decimal(38, 9)")
    return -units if neg else units


# Scientific notation as vendors write it; Decimal() alone also takes "1_0e1", non-ASCII digits, "Inf".
_SCIENTIFIC = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)[eE][+-]?\d+", re.ASCII)


def _parse_via_decimal(s: str) -> int:
    if _SCIENTIFIC.fullmatch(s) is None:
        raise AmountError(f"not a decimal amount: {s[:MAX_TEXT]!r}")
    try:
        d = Decimal(s)
    except ArithmeticError:
        raise AmountError(f"not a decimal amount: {s!r}") from None
    return decimal_to_units(d)


def decimal_to_units(d: Decimal) -> int:
    if not d.is_finite():
        raise AmountError(f"non-finite amount: {d}")
    if not d:
        return 0  # any exponent: 0E+999999 is zero
    # Checked on the exponent alone, before scaleb/int() (whose cost grows with it).
    if d.adjusted() >= MAX_INT_DIGITS:
        raise AmountError(f"amount {d:.3e} exceeds decimal(38, 9)")
    if d.adjusted() < -SCALE or len(d.as_tuple().digits) > MAX_TEXT:
        raise AmountError(f"amount {d:.3e} has more than {SCALE} decimals")
    scaled = d.scaleb(SCALE, context=_CTX)
    if scaled != scaled.to_integral_value(context=_CTX):
        raise AmountError(f"amount {d} has more than {SCALE} decimals")
    units = int(scaled)
    if abs(units) > MAX_ABS:
        raise AmountError(f"amount {d} exceeds decimal(38, 9)")
    return units


def float_to_units(x: float) -> int:
    """For vendors whose wire format itself carries binary doubles (e.g. MessagePack floats).

    Uses the shortest repr, i.e. the decimal text the vendor serialized; never arithmetic on the float.
    """
    if x != x or x in (float("inf"), float("-inf")):
        raise AmountError(f"non-finite amount: {x!r}")
    return parse_units(repr(x))


def int_to_units(n: int, scale: int = 0) -> int:
    """An integer count of 10**-scale units (e.g. DBN 1e-9 prices: scale=9) to 1e-9 units."""
    if scale > SCALE:
        div: int = pow(10, scale - SCALE)
        q, r = divmod(n, div)
        if r:
            raise AmountError(f"{n}e-{scale} has more than {SCALE} decimals")
        return q
    if scale < 0 or abs(n) > MAX_ABS:
        raise AmountError(f"{n}e-{scale} exceeds decimal(38, 9)")
    factor: int = pow(10, SCALE - scale)
    units = n * factor
    if abs(units) > MAX_ABS:
        raise AmountError(f"{n}e-{scale} exceeds decimal(38, 9)")
    return units


def format_units(units: int) -> str:
    """Plain decimal notation with trailing zeros trimmed: 25351900000 -> "25.3519"."""
    neg = units < 0
    q, r = divmod(abs(units), ONE)
    s = str(q) if not r else f"{q}.{str(r).rjust(SCALE, '0').rstrip('0')}"
    return f"-{s}" if neg else s


def units_to_decimal(units: int) -> Decimal:
    return Decimal(units).scaleb(-SCALE)
