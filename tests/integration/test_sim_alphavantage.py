"""The Alpha Vantage simulator over HTTP: the official client reads it, real shapes, per-key throttling,
error and premium bodies, faults on command and the request log."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import unique_name
from tickwire.vendors.alphavantage import sim_data
from tickwire.vendors.alphavantage.adapter import classify
from tickwire.vendors.alphavantage.simulator import AlphaVantageSimulator, key_id

pytestmark = pytest.mark.integration


@pytest.fixture
def sim() -> Iterator[AlphaVantageSimulator]:
    s = AlphaVantageSimulator(seed=11, limit=1000, window_s=60.0, unentitled_keys=("free-key",))
    s.start()
    yield s
    s.stop()


def get(sim: AlphaVantageSimulator, query: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"{sim.http_url}{query}", timeout=5) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def q(sim: AlphaVantageSimulator, params: str, key: str = "k") -> tuple[int, Any]:
    status, body = get(sim, f"/query?{params}&apikey={key}")
    return status, json.loads(body)


def test_official_client_reads_quote_and_technicals(sim: AlphaVantageSimulator) -> None:
    from alpha_vantage.alphavantage import AlphaVantage
    from alpha_vantage.techindicators import TechIndicators
    from alpha_vantage.timeseries import TimeSeries

    old = AlphaVantage._ALPHA_VANTAGE_API_URL
    AlphaVantage._ALPHA_VANTAGE_API_URL = f"{sim.http_url}/query?"
    try:
        quote, _ = TimeSeries(key="client-key").get_quote_endpoint("IBM")
        assert quote == sim_data.global_quote(sim.seed, "IBM", sim.asof.date())["Global Quote"]
        assert quote["05. price"].count(".") == 1
        ti = TechIndicators(key="client-key")
        calls = {
            "RSI": (ti.get_rsi, {"time_period": 14}, {"time_period": "14", "series_type": "close"}),
            "MACD": (ti.get_macd, {}, {"series_type": "close"}),
            "BBANDS": (ti.get_bbands, {"time_period": 20}, {"time_period": "20", "series_type": "close"}),
            "ATR": (ti.get_atr, {"time_period": 14}, {"time_period": "14"}),
        }
        for name, (fn, kwargs, params) in calls.items():
            data, meta = fn(symbol="IBM", interval="daily", **kwargs)
            want = sim_data.technical(
                sim.seed, name, {"symbol": "IBM", "interval": "daily", **params}, sim.asof
            )
            assert data == want[f"Technical Analysis: {name}"], name
            assert meta == want["Meta Data"], name
            assert len(data) == sim_data.TECH_POINTS
        # The client surfaces an error body as ValueError (no retry, no throttle/error distinction).
        with pytest.raises(ValueError, match="Invalid API call"):
            ti.get_rsi(symbol="ZZBAD", interval="daily")
    finally:
        AlphaVantage._ALPHA_VANTAGE_API_URL = old
    log = sim.requests()
    assert [e["function"] for e in log] == ["GLOBAL_QUOTE", "RSI", "MACD", "BBANDS", "ATR", "RSI"]
    assert {e["key_id"] for e in log} == {key_id("client-key")}
    assert all("apikey" not in e["params"] for e in log)
    assert [e["answer"] for e in log] == ["data"] * 5 + ["error"]


def test_options_with_and_without_greeks_and_historical(sim: AlphaVantageSimulator) -> None:
    _, with_g = q(sim, "function=REALTIME_OPTIONS&symbol=AAPL&require_greeks=true")
    _, without = q(sim, "function=REALTIME_OPTIONS&symbol=AAPL")
    day = sim.asof.date()
    assert with_g == sim_data.realtime_options(sim.seed, "AAPL", day, greeks=True)
    assert without == sim_data.realtime_options(sim.seed, "AAPL", day, greeks=False)
    greeks = ("implied_volatility", "delta", "gamma", "theta", "vega", "rho")
    rows = with_g["data"]
    assert rows and all(isinstance(v, str) for r in rows for v in r.values())
    have = [r for r in rows if "delta" in r]
    assert 0 < len(have) < len(rows)  # some contracts come without greeks: the missing_greeks case
    assert all(all(g in r for g in greeks) for r in have)
    assert not any(g in r for r in without["data"] for g in greeks)
    _, hist = q(sim, "function=HISTORICAL_OPTIONS&symbol=AAPL&date=2024-01-05")
    assert hist["endpoint"] == "Historical Options"
    assert all(all(g in r for g in greeks) for r in hist["data"])
    order = [(r["expiration"], float(r["strike"])) for r in hist["data"]]
    assert order == sorted(order)
    _, one = q(sim, f"function=REALTIME_OPTIONS&symbol=AAPL&contract={rows[3]['contractID']}")
    assert [r["contractID"] for r in one["data"]] == [rows[3]["contractID"]]


def test_news_sentiment_scores_are_numbers_the_rest_strings(sim: AlphaVantageSimulator) -> None:
    _, body = q(sim, "function=NEWS_SENTIMENT&tickers=AAPL&limit=5")
    assert body == sim_data.news_sentiment(sim.seed, "AAPL", sim.asof, 5)
    assert body["items"] == "5" and len(body["feed"]) == 5
    for art in body["feed"]:
        assert isinstance(art["overall_sentiment_score"], float)
        ts = art["ticker_sentiment"][0]
        assert ts["ticker"] == "AAPL" and isinstance(ts["ticker_sentiment_score"], str)
        assert isinstance(ts["relevance_score"], str)


@pytest.mark.parametrize(
    "params",
    [
        "function=NOPE&symbol=IBM",
        "function=RSI&symbol=IBM&interval=daily",  # time_period and series_type missing
        "function=RSI&symbol=IBM&interval=2min&time_period=14&series_type=close",
        "function=REALTIME_OPTIONS&symbol=IBM&require_greeks=maybe",
        "function=HISTORICAL_OPTIONS&symbol=IBM&date=2001-01-01",
        "function=REALTIME_OPTIONS",
        "function=ATR&symbol=ZZUNKNOWN&interval=daily&time_period=14",
    ],
)
def test_bad_parameters_get_an_error_body_with_http_200(sim: AlphaVantageSimulator, params: str) -> None:
    status, body = q(sim, params)
    assert status == 200 and list(body) == ["Error Message"]


def test_unknown_symbol_quote_and_missing_key(sim: AlphaVantageSimulator) -> None:
    assert q(sim, "function=GLOBAL_QUOTE&symbol=ZZNONE")[1] == {"Global Quote": {}}
    status, body = get(sim, "/query?function=GLOBAL_QUOTE&symbol=IBM")
    assert status == 200 and "apikey" in json.loads(body)["Error Message"]


def test_unentitled_key_gets_the_premium_sample(sim: AlphaVantageSimulator) -> None:
    status, raw = get(sim, "/query?function=REALTIME_OPTIONS&symbol=IBM&require_greeks=true&apikey=free-key")
    body = json.loads(raw)
    assert status == 200 and body == sim_data.premium_sample()
    assert "premium endpoint" in body["message"]
    assert all(r["contractID"].startswith("XXYYZZ") for r in body["data"])
    assert classify(status, raw) == "premium_sample"
    assert q(sim, "function=GLOBAL_QUOTE&symbol=IBM", key="free-key")[1]["Global Quote"]  # not premium


@pytest.mark.parametrize("style", ["information", "note"])
def test_per_key_sliding_window_throttle(style: str) -> None:
    sim = AlphaVantageSimulator(limit=3, window_s=1.5, throttle_body=style)
    sim.start()
    try:
        ans = [q(sim, "function=GLOBAL_QUOTE&symbol=IBM", key="a")[1] for _ in range(4)]
        other = q(sim, "function=GLOBAL_QUOTE&symbol=IBM", key="b")[1]
        assert [("Global Quote" in a) for a in ans] == [True, True, True, False]
        assert list(ans[3]) == ["Information" if style == "information" else "Note"]
        assert "Global Quote" in other  # accounting is per key
        first = sim.requests()[0]["t_mono"]
        time.sleep(max(0.0, first + 1.5 - time.monotonic()) + 0.05)  # the window slides past the first call
        assert "Global Quote" in q(sim, "function=GLOBAL_QUOTE&symbol=IBM", key="a")[1]
        assert [e["answer"] for e in sim.requests()] == ["data"] * 3 + ["throttle"] + ["data"] * 2
    finally:
        sim.stop()


def test_faults_on_command_and_the_request_log_over_http(sim: AlphaVantageSimulator) -> None:
    def fault(qs: str) -> dict[str, Any]:
        status, body = get(sim, f"/control/rest_fault?{qs}")
        return {"status": status, **json.loads(body)}

    assert fault("fault=bogus&count=1")["status"] == 400
    assert fault("fault=http_500&count=1")["ok"]
    assert get(sim, "/query?function=GLOBAL_QUOTE&symbol=IBM&apikey=k")[0] == 500
    assert fault("fault=malformed&count=1&function=RSI")["ok"]
    status, raw = get(sim, "/query?function=GLOBAL_QUOTE&symbol=IBM&apikey=k")  # not RSI: untouched
    assert status == 200 and json.loads(raw)["Global Quote"]
    status, raw = get(
        sim, "/query?function=RSI&symbol=IBM&interval=daily&time_period=14&series_type=close&apikey=k"
    )
    assert status == 200 and classify(status, raw) == "malformed"
    assert fault("fault=empty_chain&count=1&symbol=IBM")["ok"]
    assert q(sim, "function=REALTIME_OPTIONS&symbol=IBM")[1]["data"] == []
    assert q(sim, "function=REALTIME_OPTIONS&symbol=IBM")[1]["data"]  # count used up
    assert fault("fault=slow&count=1&delay=0.6")["ok"]
    t0 = time.monotonic()
    assert get(sim, "/query?function=GLOBAL_QUOTE&symbol=IBM&apikey=k")[0] == 200
    assert time.monotonic() - t0 >= 0.6
    assert fault("fault=throttle&seconds=30")["ok"]
    assert list(q(sim, "function=GLOBAL_QUOTE&symbol=IBM")[1]) == ["Information"]
    assert get(sim, "/control/clear")[0] == 200
    assert "Global Quote" in q(sim, "function=GLOBAL_QUOTE&symbol=IBM")[1]
    status, raw = get(sim, "/control/requests?since=1")
    log = json.loads(raw)
    assert status == 200 and log == sim.requests(1)
    assert [e["answer"] for e in sim.requests()] == [
        "http_error", "data", "malformed", "empty", "data", "data", "throttle", "data",
    ]  # fmt: skip
    assert [e["n"] for e in log] == list(range(1, 8))
    assert all(e["t_ns"] > 0 and "apikey" not in e["params"] for e in log)
    stats = json.loads(get(sim, "/control/stats")[1])
    assert stats["requests"] == 8 and stats["vendor"] == "alphavantage"  # the stats call is not /query


def test_cli_simulator_answers_on_its_port() -> None:
    name = unique_name("avsim")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tickwire.cli", "simulate", "alphavantage", "--port", "0", "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening ws://127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        url = f"http://127.0.0.1:{port}/query?function=GLOBAL_QUOTE&symbol=IBM&apikey={name}"
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.loads(r.read())
        asof = body["Global Quote"]["07. latest trading day"]
        assert body == sim_data.global_quote(3, "IBM", dt.date.fromisoformat(asof))
    finally:
        proc.terminate()
        proc.wait(10)
