"""The shared symbol helpers: the bounded memo of a pure symbol rule and the crypto metadata loader."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tickwire.contract.symbols import SymbolError, SymbolMemo, add_crypto_pairs, crypto_symbol


def _counting(rule: Callable[[str], str], calls: list[str]) -> Callable[[str], str]:
    def counted(raw: str) -> str:
        calls.append(raw)
        return rule(raw)

    return counted


def test_memo_returns_what_the_rule_returns_and_calls_it_once_per_symbol() -> None:
    calls: list[str] = []
    memo = SymbolMemo(_counting(crypto_symbol, calls))
    assert memo("btc-usd") == "BTC/USD"
    assert memo("btc-usd") == "BTC/USD"
    assert memo("ETH_EUR") == "ETH/EUR"
    assert calls == ["btc-usd", "ETH_EUR"]
    assert len(memo) == 2


def test_memo_does_not_remember_refused_symbols() -> None:
    calls: list[str] = []
    memo = SymbolMemo(_counting(crypto_symbol, calls))
    for _ in range(2):
        with pytest.raises(SymbolError):
            memo("BTCUSD")
    assert calls == ["BTCUSD", "BTCUSD"]
    assert len(memo) == 0


def test_memo_stays_bounded() -> None:
    memo = SymbolMemo(str.upper, max_size=3)
    for raw in ("a", "b", "c", "d", "e"):
        assert memo(raw) == raw.upper()
        assert len(memo) <= 3
    assert memo("e") == "E"


def test_add_crypto_pairs_skips_malformed_entries_and_bad_assets() -> None:
    entries: list[Any] = [
        {"id": "BTC-USD", "base": "btc", "quote": "usd"},
        {"id": "X", "base": "ß", "quote": "USD"},  # non-ASCII asset: outside the grammar
        {"id": "Y", "base": "A", "quote": 1},  # not a string
        {"id": "Z", "base": "A"},  # key missing
        "not a dict",
    ]
    symbols = {"OLD": "OLD/USD"}
    add_crypto_pairs(symbols, entries, "id", "base", "quote")
    assert symbols == {"OLD": "OLD/USD", "BTC-USD": "BTC/USD"}
