"""Alpha Vantage adapter: body classification, feeds per (symbol, data type), settings, the secret key."""

from __future__ import annotations

import argparse
import datetime as dt
import json

import pytest
from pydantic import ValidationError

from tickwire.contract.adapter import ConfigError
from tickwire.contract.rest import DATA
from tickwire.settings import UnknownSettingError
from tickwire.vendors.alphavantage import sim_data
from tickwire.vendors.alphavantage.adapter import AlphaVantageAdapter, build_rest, classify, feeds
from tickwire.vendors.alphavantage.settings import AlphaVantageSettings

KEY = "AVKEY-unit-77aa"
ASOF = dt.datetime(2026, 3, 4, 11, 30)


def body(obj: object) -> bytes:
    return json.dumps(obj, indent=4).encode()


@pytest.mark.parametrize(
    ("status", "payload", "outcome"),
    [
        (200, body(sim_data.realtime_options(7, "IBM", ASOF.date(), greeks=True)), DATA),
        (200, body(sim_data.realtime_options(7, "IBM", ASOF.date(), greeks=True, empty=True)), DATA),
        (200, body(sim_data.historical_options(7, "IBM", ASOF.date())), DATA),
        (200, body(sim_data.news_sentiment(7, "AAPL", ASOF)), DATA),
        (
            200,
            body(
                sim_data.technical(
                    7,
                    "RSI",
                    {"symbol": "IBM", "interval": "daily", "time_period": "14", "series_type": "close"},
                    ASOF,
                )
            ),
            DATA,
        ),
        (200, body(sim_data.global_quote(7, "IBM", ASOF.date())), DATA),
        (200, body({"Global Quote": {}}), DATA),
        (200, body({"Note": sim_data.NOTE_BODY}), "throttle"),
        (200, body({"Information": "We have detected your API key ... 25 requests per day."}), "throttle"),
        (200, body({"Information": "This is a premium endpoint ...", "data": []}), "throttle"),
        (200, body({"Error Message": "Invalid API call. Please retry or visit the documentation"}), "error"),
        (200, body(sim_data.premium_sample()), "premium_sample"),
        (
            200,
            body(
                {
                    "endpoint": "Realtime Options",
                    "message": "success",
                    "data": [{"contractID": "XXYYZZ999999C00020000"}],
                }
            ),
            "premium_sample",
        ),
        (200, b'{\n    "Meta Data": {\n        "1: Symbol": ', "malformed"),
        (200, b"", "malformed"),
        (200, b"[1, 2]", "malformed"),
        (200, b'{"unexpected": 1}', "malformed"),
        (200, b"\xff\xfe", "malformed"),
        (500, b'{"data": []}', "http_error"),
        (503, b"", "http_error"),
        (404, b"not found", "http_error"),
        (429, b"", "throttle"),
    ],
)
def test_classify(status: int, payload: bytes, outcome: str) -> None:
    assert classify(status, payload) == outcome


def test_feeds_per_symbol_and_data_type_skip_etfs_for_sentiment() -> None:
    s = AlphaVantageSettings(api_key=KEY, symbols=("SPY", "IBM", "VXX"))
    got = {f.feed: f for f in feeds(s)}
    assert "SPY:sentiment" not in got and "VXX:sentiment" not in got
    assert set(got) == {
        *(
            f"{sym}:{kind}"
            for sym in ("SPY", "IBM", "VXX")
            for kind in ("options", "rsi", "macd", "bbands", "atr")
        ),
        "IBM:sentiment",
    }
    opt = got["IBM:options"]
    assert (opt.stream, opt.key, opt.interval_s) == ("rest.realtime_options", "IBM", 10.0)
    assert opt.params == (("function", "REALTIME_OPTIONS"), ("symbol", "IBM"), ("require_greeks", "true"))
    sent = got["IBM:sentiment"]
    assert (sent.stream, sent.key, sent.interval_s) == ("rest.news_sentiment", "IBM", 300.0)
    assert sent.params == (("function", "NEWS_SENTIMENT"), ("tickers", "IBM"), ("limit", "50"))
    assert got["IBM:atr"].params == (
        ("function", "ATR"),
        ("symbol", "IBM"),
        ("interval", "daily"),
        ("time_period", "14"),
    )
    assert got["IBM:macd"].params[-1] == ("series_type", "close")
    assert all(
        f.interval_s == 60.0 for n, f in got.items() if n.split(":")[1] in ("rsi", "macd", "bbands", "atr")
    )
    assert all("apikey" not in dict(f.params) for f in got.values())


def test_url_carries_the_key_but_nothing_else_shows_it() -> None:
    s = AlphaVantageSettings(api_key=KEY, base_url="http://127.0.0.1:9/query", symbols=("IBM",))
    a = AlphaVantageAdapter(s)
    f = next(f for f in a.feeds() if f.feed == "IBM:options")
    assert a.url(f) == (
        f"http://127.0.0.1:9/query?function=REALTIME_OPTIONS&symbol=IBM&require_greeks=true&apikey={KEY}"
    )
    for text in (repr(a), repr(s), str(s), s.model_dump_json(), str(a.feeds())):
        assert KEY not in text


def test_settings_reject_unknown_keys_and_read_the_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", KEY)
    monkeypatch.setenv("ALPHAVANTAGE_SYMBOLS", "IBM, AAPL")
    monkeypatch.setenv("ALPHAVANTAGE_FAILURE_BACKOFF_MAX", "120")
    s = AlphaVantageSettings.load()
    assert s.symbols == ("IBM", "AAPL") and s.failure_backoff_max == 120.0
    assert s.api_key is not None and s.api_key.get_secret_value() == KEY
    with pytest.raises(Exception, match="frozen"):
        s.symbols = ("X",)  # type: ignore[misc]
    monkeypatch.setenv("ALPHAVANTAGE_SYMBOL", "IBM")
    with pytest.raises(UnknownSettingError, match="ALPHAVANTAGE_SYMBOL"):
        AlphaVantageSettings.load()
    with pytest.raises(Exception, match="extra"):
        AlphaVantageSettings(api_key=KEY, no_such_knob=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="at least one call"):
        AlphaVantageSettings(api_key=KEY, rate_limit_calls=10, rate_limit_buffer=10)


def _args(url: str | None) -> argparse.Namespace:
    return argparse.Namespace(url=url, symbols=None, vendor="alphavantage")


def test_build_rest_needs_a_key_for_the_real_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALPHAVANTAGE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="ALPHAVANTAGE_API_KEY"):
        build_rest(_args(None), {})
    s, a = build_rest(_args("http://127.0.0.1:5555/query"), {"rate_limit_calls": 30})
    assert s.base_url == "http://127.0.0.1:5555/query" and s.rate_limit_calls == 30
    assert s.api_key is not None and a.source == "alphavantage"


def test_run_components_parse_with_the_real_cli_parsers(monkeypatch: pytest.MonkeyPatch) -> None:
    from tickwire.contract.vendor import RunContext
    from tickwire.ingest.cli import _parser as ingest_parser
    from tickwire.simulators.cli import parser as sim_parser
    from tickwire.vendors.alphavantage import run_components

    monkeypatch.delenv("ALPHAVANTAGE_API_KEY", raising=False)
    comps = run_components(RunContext(rate=20, free_port=lambda: 40123))
    assert [c.name for c in comps] == ["sim-alphavantage", "ingest-alphavantage"]
    sim = sim_parser().parse_args(comps[0].argv[1:])
    assert (sim.vendor, sim.port, sim.limit) == ("alphavantage", 40123, 600)
    ingest = ingest_parser().parse_args(comps[1].argv[1:])
    assert (ingest.vendor, ingest.url) == ("alphavantage", "http://127.0.0.1:40123/query")
    assert comps[1].wants_metrics_port
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", KEY)
    (real,) = run_components(RunContext(rate=20, free_port=lambda: 40124))
    assert real.argv == ["ingest", "alphavantage"] and KEY not in " ".join(real.argv)
