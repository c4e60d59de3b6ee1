"""Hypothesis strategies for the fuzz job (dev extras only: ``hypothesis`` is imported here, lazily).

Two kinds of inputs:

* **frames**: a JSON seed with one of its string/number leaves replaced by a generated value (amount
  texts by the decimal grammar and past it, timestamps by the RFC 3339 grammar and past it, symbols
  from any characters, integers far beyond 64 bits), run through the same per-input loop as the mutations;
* **oracles**: generated amount texts through ``parse_units`` against ``Decimal`` (the same value, or
  both refuse), generated timestamps through ``rfc3339_to_ns`` against ``datetime``; a disagreement
  counts as an invariant violation.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import resource
import time
from collections.abc import Callable
from decimal import Context, Decimal, InvalidOperation
from typing import Any

from tickwire.contract.exact import MAX_ABS, AmountError, parse_units
from tickwire.contract.symbols import rfc3339_to_ns
from tickwire.fuzz.engine import Fuzzer, Report

_EXACT = Context(prec=400)  # no rounding for any text the oracle accepts (at most 128 characters)
_AMOUNT_GRAMMAR = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_TS_GRAMMAR = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


# Near the grammar: signs and spaces where digits go, 0-12 fraction digits, any offset.
_STAMP_LIKE = (
    r"[0-9+-]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9 +-]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{0,12})?(Z|z|[+-][0-9]{2}:[0-9]{2})?"
)


def amount_oracle(text: str) -> int | None:
    """1e-9 units of ``text`` by Decimal, or None when it must be refused (grammar, > 9 decimals, range)."""
    s = text.strip()
    if len(text) > 128 or _AMOUNT_GRAMMAR.fullmatch(s) is None:
        return None
    d = Decimal(s)
    if d and (d.adjusted() > 40 or d.adjusted() < -20):
        return None  # far outside decimal(38, 9) either way; refused without arithmetic
    try:
        scaled = d.scaleb(9, context=_EXACT)
        units = int(scaled)
    except (InvalidOperation, OverflowError):  # bounded above: not expected
        return None
    if scaled != units or abs(units) > MAX_ABS:
        return None
    return units


def ts_oracle(text: str) -> int | None:
    m = _TS_GRAMMAR.fullmatch(text)
    if m is None:
        return None
    y, mo, d, hh, mi, ss = (int(m[i]) for i in range(1, 7))
    frac = m[7] or ""
    if hh > 23 or mi > 59 or ss > 59:
        return None
    off = 0
    if m[8]:
        oh, om = int(m[9]), int(m[10])
        if oh > 23 or om > 59:
            return None
        off = (oh * 60 + om) * 60 * (1 if m[8] == "+" else -1)
    try:
        day = dt.date(y, mo, d)
    except ValueError:
        return None
    secs = (day - dt.date(1970, 1, 1)).days * 86_400 + (hh * 60 + mi) * 60 + ss - off
    return secs * 10**9 + (int(frac.ljust(9, "0")) if frac else 0)


def _against_oracle(
    rep: Report,
    name: str,
    text: str,
    parse: Callable[[str], int],
    rejects: type[Exception],
    oracle: Callable[[str], int | None],
) -> None:
    """Count a violation when ``parse`` (None when it raises ``rejects``) disagrees with ``oracle``."""
    try:
        got: int | None = parse(text)
    except rejects:
        got = None
    if got != oracle(text):
        rep.violations[name] += 1
        rep.examples.setdefault(name, text.encode()[:300])


def run_hypothesis(fz: Fuzzer, n: int, seed: int = 0) -> Report:
    """``n`` frame inputs and ``n`` oracle checks from hypothesis strategies (derandomized)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    rep = Report()
    t0 = time.monotonic()
    json_seeds = [s for s in fz.seeds if s.env.content_type == "json" and len(s.payload) < 20_000]
    amounts = st.one_of(
        st.from_regex(r"[+-]?[0-9]{0,45}(\.[0-9]{0,45})?([eE][+-]?[0-9]{1,7})?", fullmatch=True),
        st.text(alphabet="0123456789.eE+-_ \u0663\u00b2", max_size=24),
        st.decimals(allow_nan=True, allow_infinity=True).map(str),
    )
    stamps = st.one_of(
        st.from_regex(_STAMP_LIKE, fullmatch=True),
        st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    )  # fmt: skip
    symbols = st.text(st.characters(codec="utf-8"), max_size=12)
    numbers = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False))
    leaf = st.one_of(amounts, stamps, symbols, numbers)
    cfg = settings(
        max_examples=n,
        database=None,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )

    @cfg
    @given(st.integers(min_value=0, max_value=max(0, len(json_seeds) - 1)), st.integers(min_value=0), leaf)
    def frames(i: int, pick: int, value: Any) -> None:
        s = json_seeds[i]
        try:
            doc = json.loads(s.payload)
        except ValueError:
            return
        leaves = _leaves(doc)
        if not leaves:
            return
        parent, key = leaves[pick % len(leaves)]
        parent[key] = value
        fz.run_one(s, json.dumps(doc).encode(), s.env, rep)

    @cfg
    @given(amounts, stamps)
    def oracles(amount: str, stamp: str) -> None:
        rep.inputs += 1
        _against_oracle(rep, "amount_oracle", amount, parse_units, AmountError, amount_oracle)
        _against_oracle(rep, "timestamp_oracle", stamp, rfc3339_to_ns, ValueError, ts_oracle)

    if json_seeds:
        frames()
    oracles()
    rep.by_source["hypothesis:oracles"] += n
    rep.elapsed_s = time.monotonic() - t0
    rep.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return rep


def _leaves(doc: Any) -> list[tuple[Any, Any]]:
    out: list[tuple[Any, Any]] = []
    stack = [doc]
    while stack and len(out) < 2_000:
        x = stack.pop()
        items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else ()
        for k, v in items:
            if isinstance(v, (dict, list)):
                stack.append(v)
            elif not isinstance(v, bool):
                out.append((x, k))
    return out
