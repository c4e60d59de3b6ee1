"""Normalizer counters: per-record counts wait for the commit; a rolled-back cycle's are dropped."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from tickwire.normalize.metrics import Metrics
from tickwire.normalize.pipeline import Out, Result

pytestmark = pytest.mark.unit


def value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    v = reg.get_sample_value(name, labels)
    return 0.0 if v is None else v


def test_counts_move_at_flush_and_a_discarded_cycle_counts_nothing() -> None:
    reg = CollectorRegistry()
    m = Metrics(reg)
    trade, bar = Out("p.crypto_trades_realtime", b"k", b"v"), Out("p.crypto_bars_staging", b"k", b"v")
    ok = Result(outputs=[trade, trade, bar], gaps=1, crossed=2)
    bad = Result(status="dlq", outputs=[Out("p.binance.raw.dlq", None, b"v")], error_class="ParseError",
                 error_kind="internal")  # fmt: skip
    m.account("p.binance.raw", ok)
    m.account("p.binance.raw", bad)
    assert value(reg, "tickwire_normalizer_raw_records_total", topic="p.binance.raw") == 0  # pending
    m.flush()
    assert value(reg, "tickwire_normalizer_raw_records_total", topic="p.binance.raw") == 2
    assert value(reg, "tickwire_normalizer_records_out_total", topic="p.crypto_trades_realtime") == 2
    assert value(reg, "tickwire_normalizer_records_out_total", topic="p.crypto_bars_staging") == 1
    assert value(reg, "tickwire_normalizer_records_out_total", topic="p.binance.raw.dlq") == 1
    assert value(reg, "tickwire_normalizer_dlq_total", topic="p.binance.raw", error="ParseError") == 1
    assert value(reg, "tickwire_normalizer_internal_errors_total", topic="p.binance.raw") == 1
    assert value(reg, "tickwire_normalizer_gaps_total", topic="p.binance.raw") == 1
    assert value(reg, "tickwire_normalizer_crossed_quotes_total", topic="p.binance.raw") == 2
    m.account("p.binance.raw", Result(status="duplicate"))
    m.account("p.binance.raw", Result(status="control", rewound=True, resync=["A/B", "C/D"]))
    m.discard()  # rolled back: these records are processed again
    m.flush()
    assert value(reg, "tickwire_normalizer_raw_records_total", topic="p.binance.raw") == 2
    assert value(reg, "tickwire_normalizer_duplicates_total", topic="p.binance.raw") == 0
    m.account("p.binance.raw", Result(status="control", rewound=True, resync=["A/B", "C/D"]))
    m.flush()
    assert value(reg, "tickwire_normalizer_control_frames_total", topic="p.binance.raw") == 1
    assert value(reg, "tickwire_normalizer_offset_rewinds_total", topic="p.binance.raw") == 1
    assert value(reg, "tickwire_normalizer_resync_requests_total", topic="p.binance.raw") == 2
