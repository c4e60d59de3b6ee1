"""Deep liveness against the real servers: a wedged main loop turns /healthz 503 with the reason, an idle
or retrying one stays 200 (issue 16 item 8).

The processes are the real ``tickwire normalize`` and ``tickwire bridge redis`` mains, run by
``tests/integration/liveness_wedge.py``, whose only change is a record (value ``WEDGE``) that blocks the
loop forever while the process and its HTTP thread go on. The stall limit is set low (3 s) for the test.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.helpers import unique_name, wait_for
from tests.integration.liveness_wedge import WEDGE
from tests.integration.test_bridge_helpers import (
    REPO,
    Proc,
    create_topics,
    private_redis,
    procs,
    produce,
    trade,
)
from tickwire.infra.process import free_port

__all__ = ["procs"]

pytestmark = [pytest.mark.integration, pytest.mark.serial]

LIMIT_S = 3.0
REASON = re.compile(r"main loop has not run for (\d+\.\d) s \(limit 3 s\)")


def _get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _gauge(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    (value,) = [float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(name + "{")]
    return value


def _up(port: int) -> bool:
    try:
        return _get(port, "/healthz")[0] == 200
    except OSError:
        return False


def _stays_live(port: int, seconds: float, proc: Proc) -> None:
    """/healthz answers 200 every time for ``seconds`` (more than the limit: the loop keeps stamping)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert proc.alive()
        code, body = _get(port, "/healthz")
        assert (code, body["checks"]["loop"]) == (200, "ok"), body
        time.sleep(0.3)


def _turns_dead(port: int, wedged_at: float) -> str:
    """/healthz turns 503 with the loop's reason within the limit (plus scheduling slack)."""
    body = wait_for(
        lambda: (lambda cb: cb[1] if cb[0] == 503 else None)(_get(port, "/healthz")),
        LIMIT_S + 5,
        interval=0.1,
        what="/healthz 503",
    )
    assert time.monotonic() - wedged_at >= LIMIT_S - 0.5  # not failing before the limit
    assert body["status"] == "failing"
    reason = body["checks"]["loop"]
    m = REASON.fullmatch(reason)
    assert m is not None, reason
    assert LIMIT_S <= float(m.group(1)) < LIMIT_S + 5  # printed to 0.1 s: 3.04 s shows as 3.0
    assert _gauge(port, "tickwire_loop_heartbeat_age_seconds") > LIMIT_S
    assert _gauge(port, "tickwire_loop_heartbeat_limit_seconds") == LIMIT_S
    return reason


def _runner(role: str, args: list[str], log: Path, env: dict[str, str]) -> Proc:
    argv = [sys.executable, "-m", "tests.integration.liveness_wedge", role, *args]
    return Proc(argv, log, {"PYTHONPATH": str(REPO), **env})


def _wedge_when_logged(proc: Proc, log: Path) -> float:
    wait_for(lambda: b"WEDGED" in log.read_bytes(), 30, what="the wedge record reached the loop")
    assert proc.alive()
    return time.monotonic()


def test_normalizer_wedged_loop_fails_healthz(
    kafka_bootstrap: str, tmp_path: Path, procs: list[Proc]
) -> None:
    from confluent_kafka import Producer

    prefix = unique_name("lw") + "."
    port = free_port()
    log = tmp_path / "normalizer.log"
    args = ["--bootstrap", kafka_bootstrap, "--topic-prefix", prefix, "--vendors", "binance"]
    args += ["--create-topics", "--metrics-port", str(port), "--instance-id", "0"]
    proc = _runner("normalize", args, log, {"NORMALIZER_LOOP_STALL_S": str(LIMIT_S)})
    procs.append(proc.start())
    wait_for(lambda: _up(port), 60, interval=0.2, what="normalizer /healthz 200")
    wait_for(lambda: b"partitions assigned" in log.read_bytes(), 60, what="partitions assigned")
    _stays_live(port, 2 * LIMIT_S, proc)  # idle polls stamp: an idle worker is alive

    p = Producer({"bootstrap.servers": kafka_bootstrap})
    p.produce(f"{prefix}binance.raw", value=WEDGE, key=b"k")
    assert p.flush(30) == 0
    wedged_at = _wedge_when_logged(proc, log)
    _turns_dead(port, wedged_at)
    code, body = _get(port, "/healthz")
    assert code == 503 and body["checks"]["worker"] == "ok"  # no fatal error: only the loop check tells
    proc.stop(signal.SIGKILL, timeout=10)


def test_bridge_retrying_stays_live_and_wedged_loop_fails_healthz(
    kafka_bootstrap: str, tmp_path: Path, procs: list[Proc]
) -> None:
    prefix = unique_name("lb") + "."
    topic = "stock_trades_realtime"
    create_topics(kafka_bootstrap, [prefix + topic, prefix + "bridge.redis.dlq"])
    rport, port = free_port(), free_port()
    data = tmp_path / "redis-data"
    data.mkdir()
    server = private_redis(rport, data, tmp_path / "redis.log")
    procs.append(server)
    url = f"redis://127.0.0.1:{rport}/0"
    r = redis.Redis.from_url(url)
    log = tmp_path / "bridge.log"
    args = ["--bootstrap", kafka_bootstrap, "--redis-url", url, "--topic-prefix", prefix]
    args += ["--key-prefix", "lw:", "--topics", topic, "--metrics-port", str(port), "--no-control-plane"]
    env = {"REDIS_BRIDGE_LOOP_STALL_S": str(LIMIT_S), "REDIS_BRIDGE_RETRY_MAX_S": "1"}
    proc = _runner("bridge", args, log, env)
    procs.append(proc.start())
    wait_for(lambda: _up(port), 60, interval=0.2, what="bridge /healthz 200")
    produce(kafka_bootstrap, prefix, [trade(0)])
    wait_for(lambda: r.llen("lw:market:AAPL:trades") == 1, 60, what="bridge writing")
    _stays_live(port, 2 * LIMIT_S, proc)  # idle polls stamp

    server.stop(signal.SIGTERM)  # target down: the write is retried, the loop keeps running
    produce(kafka_bootstrap, prefix, [trade(1)])
    ready = wait_for(
        lambda: (lambda cb: cb[1] if cb[0] == 503 else None)(_get(port, "/readyz")), 30, what="not ready"
    )
    assert ready["checks"]["bridge.redis"].startswith("retrying a write for "), ready
    _stays_live(port, 3 * LIMIT_S, proc)  # retrying is a readiness failure, not a liveness one
    assert _get(port, "/readyz")[0] == 503

    procs.append(server.__class__(server.argv, server.log).start())
    wait_for(lambda: r.llen("lw:market:AAPL:trades") == 2, 60, interval=0.2, what="recovered")
    wait_for(lambda: _get(port, "/readyz")[0] == 200, 30, what="ready again")

    produce(kafka_bootstrap, prefix, [], raw=[(topic, WEDGE)])
    wedged_at = _wedge_when_logged(proc, log)
    _turns_dead(port, wedged_at)
    proc.stop(signal.SIGKILL, timeout=10)
