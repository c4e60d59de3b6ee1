"""Parsing of legacy ``system:subscription_updates`` events (seed 000's ControlSubscriber)."""

from __future__ import annotations

import pytest

from tickwire.bridges.control_plane import ControlEvent, ControlEventError, parse_event


def test_canonical_shape() -> None:
    ev = parse_event(b'{"action":"subscribe","type":"stock","symbols":["AAPL","spy"]}')
    assert ev == [ControlEvent("subscribe", "stock", ("AAPL", "SPY"))]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"event":"unsubscribe","assetType":"crypto","symbols":["btc/usd"]}', ("unsubscribe", "crypto")),
        ('{"type":"subscribe","asset_type":"equity","symbol":"TSLA"}', ("subscribe", "stock")),
        ('{"op":"ADD","market":"stocks","symbols":"AAPL, MSFT"}', ("subscribe", "stock")),
        ('{"action":"remove","assetClass":"us_equity","symbols":["QQQ"]}', ("unsubscribe", "stock")),
    ],
)
def test_accepted_variants(text: str, expected: tuple[str, str]) -> None:
    (ev,) = parse_event(text)
    assert (ev.action, ev.type) == expected
    assert ev.symbols and all(s == s.upper().strip() for s in ev.symbols)


def test_type_inferred_per_symbol_when_missing() -> None:
    evs = parse_event('{"action":"subscribe","symbols":["AAPL","ETH/USD","AAPL"]}')
    assert evs == [
        ControlEvent("subscribe", "stock", ("AAPL",)),
        ControlEvent("subscribe", "crypto", ("ETH/USD",)),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1,2]",
        '{"type":"stock","symbols":["AAPL"]}',  # no action
        '{"action":"subscribe","type":"forex","symbols":["EUR/USD"]}',  # unknown type
        '{"action":"subscribe","type":"stock","symbols":[]}',
        '{"action":"subscribe","type":"stock","symbols":[1]}',
    ],
)
def test_rejected(text: str) -> None:
    with pytest.raises(ControlEventError):
        parse_event(text)
