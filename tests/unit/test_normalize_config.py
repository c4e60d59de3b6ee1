"""Normalizer settings: prefix, shared variables, unknown keys rejected."""

from __future__ import annotations

import pytest

from tickwire.normalize.config import NormalizerSettings
from tickwire.settings import UnknownSettingError


def test_defaults_and_shared_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "10.0.0.1:9092")
    monkeypatch.setenv("NORMALIZER_BAR_SOURCES", "binance, coinbase")
    s = NormalizerSettings.load(topic_prefix="p.", group="g")
    assert s.bootstrap_servers == "10.0.0.1:9092"
    assert s.bar_source_set() == {"binance", "coinbase"}
    assert s.seq_gap_source_set() == {"databento"}
    assert s.effective_app_id == "p.g"
    assert NormalizerSettings.load().effective_app_id == "tickwire-normalizer"
    assert s.processing_guarantee == "exactly_once"


def test_unknown_prefixed_variable_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NORMALIZER_BAR_SOURCE", "binance")  # typo
    with pytest.raises(UnknownSettingError):
        NormalizerSettings.load()
