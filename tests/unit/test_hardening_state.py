"""Issue 16, input side: the sizes of bounded state, as the normalizer's metrics serve them."""

from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry, Gauge

from tests.unit.test_normalize_pipeline import T0, Feed, make
from tickwire.contract.envelope import Envelope
from tickwire.normalize.dedupe import MAX_SESSIONS
from tickwire.normalize.metrics import Metrics
from tickwire.normalize.pipeline import RawMessage
from tickwire.normalize.sizes import entries, state_sizes

pytestmark = pytest.mark.unit


def test_state_sizes_count_parser_bars_symbols_and_dedupe_cursors() -> None:
    p = make(bar_sources=frozenset({"fake"}))
    body = json.dumps({"t": "trade", "s": "BTC/USD", "p": "1", "q": "1", "ts": T0}).encode()
    for session in range(1, 21):
        env = Envelope("fake", "s", session, 1, T0, "json")
        assert p.process(RawMessage("fake.raw", 0, session, b"k", body, env.to_headers())).status == "ok"
    sizes = state_sizes(p, p.stores.values())
    assert sizes == {"parser": 1, "bars": 1, "symbols": 1, "dedupe": MAX_SESSIONS}


def test_entries_of_a_nested_parser_state() -> None:
    from tickwire.vendors.coinbase.parser import CoinbaseState

    st = CoinbaseState()
    st.symbols.update({"A-B": "A/B", "C-D": "C/D"})
    st.trades.check("A/B", 1, 0)
    assert entries(st) == 2 + 2  # two symbols, one trade id with its timestamp (NextId.last, NextId.ts)


def test_metrics_serve_the_state_sizes_at_scrape_time() -> None:
    registry = CollectorRegistry()  # the process registry already holds the normalizer's metrics
    m = Metrics.__new__(Metrics)
    m.state = Gauge("tickwire_normalizer_state_entries", "", ["kind"], registry=registry)
    p, f = make(), Feed()
    m.watch_state(lambda: state_sizes(p, p.stores.values()))
    assert registry.get_sample_value("tickwire_normalizer_state_entries", {"kind": "dedupe"}) == 0
    p.process(f.msg({"t": "trade", "s": "BTC/USD", "p": "1", "q": "1", "ts": T0}))
    assert registry.get_sample_value("tickwire_normalizer_state_entries", {"kind": "dedupe"}) == 1
    assert registry.get_sample_value("tickwire_normalizer_state_entries", {"kind": "symbols"}) == 1
