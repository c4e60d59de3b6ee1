"""Polygon adapter and settings: messages sent, statuses -> runner errors, frame keys; env keys."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from tickwire.contract.adapter import AuthError, RetryableVendorError, VendorWarning
from tickwire.settings import UnknownSettingError
from tickwire.vendors.polygon.adapter import PARAMS_PER_FRAME, PolygonAdapter
from tickwire.vendors.polygon.settings import PolygonSettings


def adapter(market: str = "stocks") -> PolygonAdapter:
    return PolygonAdapter(PolygonSettings.load(api_key="k3y"), market=market)


def status(st: str, msg: str = "") -> bytes:
    return json.dumps([{"ev": "status", "status": st, "message": msg}]).encode()


def test_api_key_from_either_env_name_secret_and_unknown_keys_rejected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for k in ("POLYGON_API_KEY", "MASSIVE_API_KEY"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("MASSIVE_API_KEY", "m-key")
    s = PolygonSettings.load()
    assert s.api_key is not None and s.api_key.get_secret_value() == "m-key" and "m-key" not in repr(s)
    monkeypatch.setenv("POLYGON_API_KEY", "p-key")
    monkeypatch.delenv("MASSIVE_API_KEY")
    assert PolygonSettings.load().api_key.get_secret_value() == "p-key"  # type: ignore[union-attr]
    monkeypatch.setenv("POLYGON_STRIKE_COUNTT", "3")
    with pytest.raises(UnknownSettingError):
        PolygonSettings.load()
    monkeypatch.delenv("POLYGON_STRIKE_COUNTT")
    with pytest.raises(ValidationError):
        PolygonSettings.load(bogus=1)
    with pytest.raises(ValidationError):
        s.strike_count = 9  # type: ignore[misc]


def test_subscribe_messages_are_comma_separated_and_chunked() -> None:
    a = adapter("options")
    (one,) = a.subscribe_frames({"T": frozenset({"SPY", "AAPL"}), "Q": frozenset({"SPY"})})
    assert json.loads(one) == {"action": "subscribe", "params": "Q.SPY,T.AAPL,T.SPY"}
    assert json.loads(a.unsubscribe_frames({"T": frozenset({"SPY"})})[0]) == {
        "action": "unsubscribe",
        "params": "T.SPY",
    }
    many = frozenset(f"O:SPY251216C00{600 + i:03d}000" for i in range(PARAMS_PER_FRAME + 5))
    frames = a.subscribe_frames({"T": many})
    params = [p for f in frames for p in json.loads(f)["params"].split(",")]
    assert len(frames) == 2 and sorted(params) == sorted(f"T.{t}" for t in many)
    assert a.subscribe_frames({}) == [] and (a.stream, a.control_vendor) == ("options", "polygon-options")
    assert (adapter().stream, adapter().control_vendor) == ("stocks", "polygon")


def test_statuses_map_to_runner_errors() -> None:
    a = adapter()
    assert a.check(status("connected")) is None and a.check(status("success", "subscribed to: T.SPY")) is None
    with pytest.raises(AuthError):
        a.check(status("auth_failed", "authentication failed"))
    with pytest.raises(RetryableVendorError) as exc:
        a.check(status("max_connections", "Maximum number of websocket connections exceeded."))
    assert exc.value.backoff_hint is not None and exc.value.backoff_hint >= 60
    with pytest.raises(RetryableVendorError) as exc:
        a.check(status("auth_timeout", "No authentication request received."))
    assert exc.value.backoff_hint is None
    with pytest.raises(VendorWarning):
        a.check(status("error", "not authorized"))


def test_frame_key_and_data() -> None:
    a = adapter()
    one = (
        b'[{"ev":"T","sym":"SPY","p":1,"s":1,"t":1},{"ev":"Q","sym":"SPY","bp":1,"ap":1,"bs":1,"as":1,"t":1}]'
    )
    mixed = b'[{"ev":"T","sym":"SPY","p":1,"s":1,"t":1},{"ev":"T","sym":"AAPL","p":1,"s":1,"t":1}]'
    assert (a.classify(one), a.classify(mixed), a.classify(b"[{")) == ("SPY", None, None)
    assert a.is_data(one) and not a.is_data(status("success")) and not a.is_data(b"garbage")


def test_run_components_parse_with_the_real_cli_parsers(monkeypatch: pytest.MonkeyPatch) -> None:
    from tickwire.contract.vendor import RunContext
    from tickwire.ingest.cli import _parser as ingest_parser
    from tickwire.simulators.cli import parser as sim_parser
    from tickwire.vendors.polygon import run_components

    for k in ("POLYGON_API_KEY", "MASSIVE_API_KEY"):
        monkeypatch.delenv(k, raising=False)
    ports = iter(range(40000, 40010))
    comps = run_components(RunContext(rate=20, free_port=lambda: next(ports)))
    assert [c.name for c in comps] == ["sim-polygon", "ingest-polygon-stocks", "ingest-polygon-options"]
    sim = sim_parser().parse_args(comps[0].argv[1:])
    assert (sim.vendor, sim.port) == ("polygon", 40000)
    stocks, options = (ingest_parser().parse_args(c.argv[1:]) for c in comps[1:])
    assert (stocks.market, stocks.url) == ("stocks", "ws://127.0.0.1:40000/stocks")
    assert (options.market, options.url) == ("options", "ws://127.0.0.1:40000/options")
    assert options.contracts_url == "http://127.0.0.1:40000/v3/reference/options/contracts"
    assert not options.no_strikes and all(c.wants_metrics_port for c in comps[1:])
