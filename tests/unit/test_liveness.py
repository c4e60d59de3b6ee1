"""Deep liveness (issue 16 item 8): the loop heartbeat, its gauges, its settings and its alert rule."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from pydantic import ValidationError

from tests.helpers import unique_name
from tickwire.bridges.config import NatsBridgeSettings, RedisBridgeSettings
from tickwire.infra.process import free_port
from tickwire.normalize.app import stream_config
from tickwire.normalize.config import NormalizerSettings
from tickwire.runtime import httpd
from tickwire.runtime.config import StreamConfig
from tickwire.runtime.httpd import Heartbeat
from tickwire.runtime.sink import SinkConfig

pytestmark = pytest.mark.unit

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yaml"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def gauge(name: str, loop: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"loop": loop})


def test_check_fails_with_the_age_and_limit_once_the_stamp_is_too_old() -> None:
    clock = Clock()
    hb = Heartbeat(unique_name("hb"), 60.0, clock)
    assert hb.check() is None
    clock.t += 60.0
    assert hb.check() is None  # at the limit: still alive
    clock.t += 14.2
    assert hb.check() == "main loop has not run for 74.2 s (limit 60 s)"
    hb.beat()
    assert hb.check() is None
    assert hb.age() == 0.0


def test_grace_extends_one_interval_and_the_next_beat_ends_it() -> None:
    clock = Clock()
    hb = Heartbeat(unique_name("hb"), 10.0, clock)
    hb.beat(grace_s=30.0)  # entering a call bounded by its own 30 s timeout
    clock.t += 35.0
    assert hb.check() is None
    clock.t += 5.5
    assert hb.check() == "main loop has not run for 40.5 s (limit 40 s)"
    hb.beat()
    clock.t += 10.5
    assert hb.check() == "main loop has not run for 10.5 s (limit 10 s)"


def test_gauges_read_the_age_and_limit_at_scrape_time_and_close_drops_them() -> None:
    clock = Clock()
    loop = unique_name("hb")
    hb = Heartbeat(loop, 5.0, clock)
    clock.t += 7.0  # nothing stamps: the gauge still moves (a wedged loop cannot update a gauge)
    assert gauge("tickwire_loop_heartbeat_age_seconds", loop) == 7.0
    assert gauge("tickwire_loop_heartbeat_limit_seconds", loop) == 5.0
    hb.beat(grace_s=2.5)
    assert gauge("tickwire_loop_heartbeat_age_seconds", loop) == 0.0
    assert gauge("tickwire_loop_heartbeat_limit_seconds", loop) == 7.5
    hb.close()
    assert gauge("tickwire_loop_heartbeat_age_seconds", loop) is None
    assert gauge("tickwire_loop_heartbeat_limit_seconds", loop) is None


def test_closing_an_old_loop_keeps_the_gauge_of_its_successor() -> None:
    clock = Clock()
    loop = unique_name("hb")
    old = Heartbeat(loop, 5.0, clock)
    new = Heartbeat(loop, 9.0, clock)
    old.close()
    assert gauge("tickwire_loop_heartbeat_limit_seconds", loop) == 9.0
    new.close()
    assert gauge("tickwire_loop_heartbeat_limit_seconds", loop) is None


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Heartbeat(unique_name("hb"), 0.0)


def test_healthz_turns_503_with_the_reason_while_readyz_reports_it_too() -> None:
    clock = Clock()
    hb = Heartbeat(unique_name("hb"), 3.0, clock)
    httpd.HEALTH.clear()
    port = httpd.serve(free_port()) or 0
    httpd.HEALTH.liveness("loop", hb.check)

    def get(path: str) -> tuple[int, dict[str, object]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    try:
        assert get("/healthz") == (200, {"status": "ok", "checks": {"loop": "ok"}})
        clock.t += 4.25
        reason = "main loop has not run for 4.2 s (limit 3 s)"
        assert get("/healthz") == (503, {"status": "failing", "checks": {"loop": reason}})
        assert get("/readyz") == (503, {"ready": False, "checks": {"loop": reason}})
    finally:
        httpd.HEALTH.clear()
        hb.close()


def test_settings_carry_the_limit_into_the_runtime_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"bootstrap_servers": "x:1", "group_id": "g", "topics": ("t",)}
    assert StreamConfig(**base).loop_stall_s == 60.0  # type: ignore[arg-type]
    assert SinkConfig(**base).loop_stall_s == 60.0  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        SinkConfig(**base, loop_stall_s=0)  # type: ignore[arg-type]
    monkeypatch.setenv("NORMALIZER_LOOP_STALL_S", "7.5")
    s = NormalizerSettings.load()
    assert stream_config(s, ["binance"]).loop_stall_s == 7.5
    monkeypatch.setenv("REDIS_BRIDGE_LOOP_STALL_S", "4")
    monkeypatch.setenv("NATS_BRIDGE_LOOP_STALL_S", "9")
    assert RedisBridgeSettings.load().loop_stall_s == 4.0
    assert NatsBridgeSettings.load().loop_stall_s == 9.0


def test_bridge_sink_config_passes_the_limit() -> None:
    from tickwire.bridges.batch import BridgeLoop

    class NoWriter:
        async def start(self) -> None: ...
        async def write(self, items: list[object]) -> int:
            return 0

        async def reset(self) -> None: ...
        async def stop(self) -> None: ...

    loop = BridgeLoop(RedisBridgeSettings(loop_stall_s=12.0), "redis", NoWriter())  # type: ignore[arg-type]
    try:
        assert loop.sink_config().loop_stall_s == 12.0
    finally:
        httpd.HEALTH.clear()


def test_alert_rule_fires_on_the_liveness_condition() -> None:
    doc = yaml.safe_load(RULES.read_text())
    (rule,) = [r for g in doc["groups"] for r in g["rules"] if r.get("alert") == "TickwireLoopStalled"]
    assert rule["expr"] == "tickwire_loop_heartbeat_age_seconds > tickwire_loop_heartbeat_limit_seconds"
    assert rule["labels"]["severity"] == "critical"
