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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tickwire.contract.exact import ONE

SYMBOL_PATTERNS: dict[str, re.Pattern[str]] = {
    "equity": re.compile(r"^[A-Z][A-Z0-9]*([./][A-Z0-9]+)?$"),
    "crypto": re.compile(r"^[A-Z0-9]+/[A-Z0-9]+$"),
    "option": re.compile(r"^[A-Z0-9]{1,6}\d{6}[CP]\d{8}$"),
    "future": re.compile(r"^[A-Z0-9][A-Z0-9 .:/_-]*$"),
    "fx": re.compile(r"^[A-Z]{3}/[A-Z]{3}$"),
}


MAX_SYMBOL_LEN = 64


class SymbolError(ValueError):
    pass


def check_symbol(symbol: str, asset_class: str) -> str:
    """``symbol`` when it matches its asset class's canonical grammar, else ``SymbolError``.

    Canonical symbols become Redis keys, pub/sub channels and NATS subjects downstream: anything outside
    the grammar (``AAPL:ticker``, ``A*``, ``X>Y``, ``A B``, control characters, non-ASCII) is rejected here.
    """
    pattern = SYMBOL_PATTERNS.get(asset_class)
    if pattern is None:
        raise SymbolError(f"unknown asset class {asset_class!r}")
    if len(symbol) > MAX_SYMBOL_LEN or not symbol.isascii() or pattern.match(symbol) is None:
        raise SymbolError(f"not a canonical {asset_class} symbol: {symbol[:MAX_SYMBOL_LEN]!r}")
    return symbol


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
    # ASCII only before upper(): "ß".upper() is "SS", so a non-ASCII asset would turn into another one.
    if not (base.isascii() and quote.isascii() and base.isalnum() and quote.isalnum()):
        raise SymbolError(f"not a crypto asset pair: {base!r}/{quote!r}")
    return f"{base.upper()}/{quote.upper()}"


def add_crypto_pairs(
    symbols: dict[str, str], entries: Iterable[Any], symbol_key: str, base_key: str, quote_key: str
) -> None:
    """Vendor symbol metadata -> ``symbols[entry[symbol_key]] = crypto_pair(base, quote)``, in place.

    Entries that are not dicts or lack one of the three keys as a string are passed over, and so are
    asset names outside the canonical grammar (their frames then go to the DLQ).
    """
    for e in entries:
        if isinstance(e, dict) and all(isinstance(e.get(k), str) for k in (symbol_key, base_key, quote_key)):
            try:
                symbols[e[symbol_key]] = crypto_pair(e[base_key], e[quote_key])
            except SymbolError:
                continue


def crypto_symbol(text: str) -> str:
    """``BTC-USD`` / ``btc/usd`` / ``BTC_USD`` -> ``BTC/USD``. Concatenated pairs (``BTCUSDT``) need
    exchange metadata: use :func:`crypto_pair` with the exchange's base/quote assets instead."""
    for sep in ("-", "/", "_"):
        base, found, quote = text.partition(sep)
        if found and base and quote and sep not in quote:
            return crypto_pair(base, quote)
    raise SymbolError(f"cannot split crypto pair {text!r}")


class SymbolMemo:
    """Bounded memo of a pure vendor-symbol -> canonical-symbol rule: ``SymbolMemo(rule)(raw) == rule(raw)``.

    For fallback rules that are pure but cost more than a dict hit (suffix scans, splits and regexes).
    A raw symbol the rule refuses (any exception) is not remembered, so it raises again on every call.
    At ``max_size`` entries the memo starts over: memory stays bounded whatever symbols arrive.
    """

    __slots__ = ("_max_size", "_memo", "_rule")

    def __init__(self, rule: Callable[[str], str], max_size: int = 100_000) -> None:
        self._rule = rule
        self._max_size = max_size
        self._memo: dict[str, str] = {}

    def __call__(self, raw: str) -> str:
        found = self._memo.get(raw)
        if found is None:
            found = self._rule(raw)
            if len(self._memo) >= self._max_size:
                self._memo.clear()
            self._memo[raw] = found
        return found

    def __len__(self) -> int:
        return len(self._memo)


# ---- timestamps -----------------------------------------------------------------------------------

_NS_PER_DAY = 86_400 * 10**9
_EPOCH_ORD = dt.date(1970, 1, 1).toordinal()


# The whole grammar, ASCII digits only: int() alone also takes "-1", " 1", "+1", "1_0", non-ASCII digits.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


@lru_cache(maxsize=4096)
def _day_ns(date_text: str) -> int:
    if _DATE.fullmatch(date_text) is None:
        raise ValueError("bad date")
    y, m, d = int(date_text[0:4]), int(date_text[5:7]), int(date_text[8:10])
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
    m = _RFC3339.fullmatch(text)
    try:
        if m is None:
            raise ValueError
        day = _day_ns(text[:10])
        hh, mi, ss = int(m[4]), int(m[5]), int(m[6])
        if hh > 23 or mi > 59 or ss > 59:
            raise ValueError
        digits = m[7]
        frac_ns = int(digits) * 10 ** (9 - len(digits)) if digits else 0
        offset = 0
        if m[9] is not None:
            oh, om = int(m[10]), int(m[11])
            if oh > 23 or om > 59:
                raise ValueError
            offset = (oh * 60 + om) * 60 * 10**9
            if m[9] == "+":
                offset = -offset
    except ValueError:
        raise ValueError(f"not an RFC 3339 timestamp: {text[:64]!r}") from None
    return day + ((hh * 60 + mi) * 60 + ss) * 10**9 + frac_ns + offset


def seconds_text_to_ns(text: str) -> int:
    """Decimal epoch seconds as text (``1611010553.6917899``) -> int ns, exact (no float)."""
    whole, _, frac = text.strip().partition(".")
    if not (whole.isdigit() and whole.isascii() and len(whole) <= 12) or (
        frac and not (frac.isdigit() and frac.isascii())
    ):
        raise ValueError(f"not epoch seconds: {text!r}")
    frac = frac[:9].ljust(9, "0")
    return int(whole) * 10**9 + int(frac)
