"""Shared, vendor-neutral parsing helpers: canonical symbols and exact timestamps.

Canonical symbols per asset class (``SYMBOL_PATTERNS``):
- equity: the listing symbol as the SIP prints it, share classes with a dot (``BRK.B``);
- crypto: ``BASE/QUOTE`` upper case (``BTC/USD``);
- option: OSI without padding, ``ROOT YYMMDD C|P STRIKE*1000 (8 digits)`` -> ``SPY251216C00676000``;
- future / fx: the vendor's raw symbol (``ESH1``, ``EUR/USD``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache

from tickwire.contract.exact import ONE

SYMBOL_PATTERNS: dict[str, re.Pattern[str]] = {
    "equity": re.compile(r"^[A-Z][A-Z0-9]*([./][A-Z0-9]+)?$"),
    "crypto": re.compile(r"^[A-Z0-9]+/[A-Z0-9]+$"),
    "option": re.compile(r"^[A-Z0-9]{1,6}\d{6}[CP]\d{8}$"),
    "future": re.compile(r"^[A-Z0-9][A-Z0-9 .:/_-]*$"),
    "fx": re.compile(r"^[A-Z]{3}/[A-Z]{3}$"),
}


class SymbolError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class OptionSymbol:
    symbol: str  # canonical OSI without padding
    underlying: str
    expiry: dt.date
    right: str  # "C" | "P"
    strike: int  # 1e-9 units


_OSI = re.compile(r"^([A-Z0-9.]{1,6}) *(\d{2})(\d{2})(\d{2})([CP])(\d{8})$")


def parse_option(ticker: str) -> OptionSymbol:
    """``O:SPY251216C00676000`` / ``SPY251216C00676000`` / padded OSI ``SPY   251216C00676000``."""
    raw = ticker[2:] if ticker.startswith("O:") else ticker
    m = _OSI.match(raw.upper())
    if not m:
        raise SymbolError(f"not an OSI option symbol: {ticker!r}")
    root, yy, mm, dd, right, strike = m.groups()
    try:
        expiry = dt.date(2000 + int(yy), int(mm), int(dd))
    except ValueError:
        raise SymbolError(f"bad expiry in option symbol {ticker!r}") from None
    # OSI strike is in 1/1000 of the currency unit
    units = int(strike) * (ONE // 1000)
    root = root.replace(".", "")
    return OptionSymbol(f"{root}{yy}{mm}{dd}{right}{strike}", root, expiry, right, units)


def crypto_pair(base: str, quote: str) -> str:
    return f"{base.upper()}/{quote.upper()}"


def crypto_symbol(text: str) -> str:
    """``BTC-USD`` / ``btc/usd`` / ``BTC_USD`` -> ``BTC/USD``. Concatenated pairs (``BTCUSDT``) need
    exchange metadata: use :func:`crypto_pair` with the exchange's base/quote assets instead."""
    for sep in ("-", "/", "_"):
        base, found, quote = text.partition(sep)
        if found and base and quote and sep not in quote:
            return crypto_pair(base, quote)
    raise SymbolError(f"cannot split crypto pair {text!r}")


# ---- timestamps -----------------------------------------------------------------------------------

_NS_PER_DAY = 86_400 * 10**9
_EPOCH_ORD = dt.date(1970, 1, 1).toordinal()


@lru_cache(maxsize=4096)
def _day_ns(date_text: str) -> int:
    y, m, d = int(date_text[0:4]), int(date_text[5:7]), int(date_text[8:10])
    if date_text[4] != "-" or date_text[7] != "-":
        raise ValueError("bad date")
    return (dt.date(y, m, d).toordinal() - _EPOCH_ORD) * _NS_PER_DAY


# Whole-second prefix ``YYYY-MM-DDTHH:MM:SS`` -> ns, filled by the full parser only (so only valid
# prefixes). Vendor timestamps arrive in time order: thousands share a second, and the fast path below
# is a slice, a dict hit and one int() instead of seven int()s and the date arithmetic.
_SECONDS: dict[str, int] = {}
_SECONDS_MAX = 50_000
_FRAC_SCALE = (0, 10**8, 10**7, 10**6, 10**5, 10**4, 10**3, 10**2, 10, 1)


def rfc3339_to_ns(text: str) -> int:
    """RFC 3339 / ISO 8601 timestamp with 0-9 fractional digits and ``Z`` or ``±HH:MM`` -> int ns, exact.

    ``2021-02-22T15:51:44.208123456Z`` -> 1614009104208123456. Raises ``ValueError`` on anything else.
    """
    base = _SECONDS.get(text[:19])
    if base is not None and text[-1] == "Z":
        frac = text[20:-1]
        if not frac and len(text) == 20:
            return base
        # isdigit() also accepts non-ASCII digits such as "²" that int() refuses: isascii() keeps it to 0-9.
        if text[19] == "." and 0 < len(frac) <= 9 and frac.isdigit() and frac.isascii():
            return base + int(frac) * _FRAC_SCALE[len(frac)]
    ns = _rfc3339_to_ns(text)
    if len(text) >= 20 and text[19] in ".Zz":
        if len(_SECONDS) >= _SECONDS_MAX:
            _SECONDS.clear()
        _SECONDS[text[:19]] = _rfc3339_to_ns(text[:19] + "Z")
    return ns


def _rfc3339_to_ns(text: str) -> int:
    try:
        if len(text) < 20 or text[10] not in "Tt " or text[13] != ":" or text[16] != ":":
            raise ValueError
        day = _day_ns(text[:10])
        hh, mi, ss = int(text[11:13]), int(text[14:16]), int(text[17:19])
        if hh > 23 or mi > 59 or ss > 59:
            raise ValueError
        i = 19
        frac_ns = 0
        if text[i] == ".":
            j = i + 1
            n = len(text)
            while j < n and text[j].isdigit():
                j += 1
            digits = text[i + 1 : j]
            if not digits or len(digits) > 9:
                raise ValueError
            frac_ns = int(digits) * 10 ** (9 - len(digits))
            i = j
        tz = text[i:]
        if tz in ("Z", "z"):
            offset = 0
        elif len(tz) == 6 and tz[0] in "+-" and tz[3] == ":" and tz[1:3].isdigit() and tz[4:].isdigit():
            offset = (int(tz[1:3]) * 60 + int(tz[4:6])) * 60 * 10**9
            if tz[0] == "+":
                offset = -offset
        else:
            raise ValueError
    except (ValueError, IndexError):
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}") from None
    return day + ((hh * 60 + mi) * 60 + ss) * 10**9 + frac_ns + offset


def seconds_text_to_ns(text: str) -> int:
    """Decimal epoch seconds as text (``1611010553.6917899``) -> int ns, exact (no float)."""
    whole, _, frac = text.strip().partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(f"not epoch seconds: {text!r}")
    frac = frac[:9].ljust(9, "0")
    return int(whole) * 10**9 + int(frac)
