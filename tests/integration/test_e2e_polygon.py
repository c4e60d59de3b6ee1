"""Polygon end to end, as separate processes: simulator -> `tickwire ingest polygon --market options` ->
polygon.raw -> `tickwire normalize` -> option_trades_realtime -> `tickwire bridge nats` -> JetStream
``market.options.trades``, with exact option fields at every hop."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer

from tests.helpers import unique_name, wait_for
from tests.integration.test_bridge_helpers import TICKWIRE, Proc, bridge_proc, procs  # noqa: F401
from tickwire.contract.codec import Codec
from tickwire.contract.records import Trade
from tickwire.vendors.polygon.simulator import PolygonSimulator

pytestmark = pytest.mark.integration

# A minute ago (whole seconds + 4 ms): the normalizer rejects event times over a day behind their receipt.
T_MS = (time.time_ns() // 10**9 - 60) * 1000 + 4


def canonical(bootstrap: str, topic: str, want: int, timeout: float) -> list[Any]:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("e2epg"),
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    c.subscribe([topic])
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(got) < want:
            got += [Codec().decode(m.value()) for m in c.consume(100, 0.5) if m.error() is None and m.value()]
    finally:
        c.close()
    return got


async def jetstream(url: str, stream: str, subject: str, want: int, timeout: float) -> list[dict[str, Any]]:
    import nats

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if (await js.stream_info(stream)).state.messages >= want:
                    break
            except Exception:  # the bridge creates the stream at start
                pass
            await asyncio.sleep(0.5)
        sub = await js.pull_subscribe(subject, durable=None, stream=stream)
        out: list[dict[str, Any]] = []
        try:
            for m in await sub.fetch(want + 10, timeout=3):
                out.append(json.loads(m.data))
        except Exception:  # fetch timeout: drained
            pass
        return out
    finally:
        try:
            await nc.jetstream().delete_stream(stream)
        finally:
            await nc.close()


@pytest.mark.timeout(240)
def test_option_trades_reach_kafka_and_jetstream_exactly(
    kafka_bootstrap: str,
    nats_url: str,
    tmp_path: Path,
    procs: list[Proc],  # noqa: F811
) -> None:
    prefix = unique_name("e2epg") + "."
    stream_name = unique_name("PG").replace("-", "_").upper()
    subj = unique_name("pgs").replace("-", "_") + "."
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "TICKWIRE_LOG_LEVEL": "INFO"}
    sim = PolygonSimulator(mode="manual", rate=0, symbols=["SPY"], seed=2)
    sim.start()
    contracts = ["O:SPY251216C00676000", "O:SPXW251219P06700000"]
    try:
        ingest = [
            TICKWIRE,
            "ingest",
            "polygon",
            "--market",
            "options",
            "--no-strikes",
            "--url",
            sim.url + "/options",
            "--topic-prefix",
            prefix,
            "--metrics-port",
            "0",
        ]
        procs.append(Proc(ingest, tmp_path / "ingest.log", {**env, "POLYGON_OPTION_CHANNELS": "T"}).start())
        # options defaults are empty (the strike manager owns them): an operator sets them here
        from tickwire.ingest.subscriptions import main as subscriptions_main

        base = ["--bootstrap", kafka_bootstrap, "--topic-prefix", prefix]
        wait_for(lambda: bool(sim.active()), 60, what="producer connected")
        assert subscriptions_main(["add", "polygon-options", "T", *contracts, *base]) == 0
        want_subs = {f"T.{c}" for c in contracts}
        wait_for(
            lambda: sim.active() and sim.active()[0].subscriptions == want_subs, 60, what="subscribed live"
        )
        norm = [
            TICKWIRE,
            "normalize",
            "--topic-prefix",
            prefix,
            "--vendors",
            "polygon",
            "--create-topics",
            "--metrics-port",
            "0",
        ]
        procs.append(
            Proc(
                norm, tmp_path / "normalize.log", {**env, "NORMALIZER_DATA_DIR": str(tmp_path / "n")}
            ).start()
        )
        nats_args = [
            "--topic-prefix",
            prefix,
            "--stream",
            stream_name,
            "--subject-prefix",
            subj,
            "--metrics-port",
            "0",
            "--nats-url",
            nats_url,
            "--bootstrap",
            kafka_bootstrap,
        ]
        procs.append(bridge_proc("nats", nats_args, tmp_path / "bridge-nats.log", env).start())
        t0 = {"ev": "T", "sym": contracts[0], "x": 65, "p": Decimal("1.37"), "s": 4, "c": [209], "t": T_MS}
        t1 = {"ev": "T", "sym": contracts[1], "x": 5, "p": Decimal("41.205"), "s": 12, "c": [], "t": T_MS + 1}
        sim.publish([{**t0, "q": 844090872}, {**t1, "q": 31}])
        got = canonical(kafka_bootstrap, prefix + "option_trades_realtime", 2, 120)
        js = asyncio.run(jetstream(nats_url, stream_name, f"{subj}market.options.trades", 2, 90))
    finally:
        sim.stop()
    by_sym = {r.symbol: r for r in got}
    assert sorted(by_sym) == ["SPXW251219P06700000", "SPY251216C00676000"] and len(got) == 2
    spy, spx = by_sym["SPY251216C00676000"], by_sym["SPXW251219P06700000"]
    assert isinstance(spy, Trade) and isinstance(spx, Trade)
    assert (spy.asset_class, spy.underlying, spy.expiry, spy.right, spy.strike) == (
        "option",
        "SPY",
        dt.date(2025, 12, 16),
        "C",
        676 * 10**9,
    )
    assert (spy.price, spy.size, spy.ts_event, spy.trade_id) == (
        1_370_000_000,
        4 * 10**9,
        T_MS * 10**6,
        f"{T_MS}-844090872",
    )
    assert (spx.underlying, spx.expiry, spx.right, spx.strike, spx.price, spx.size, spx.ts_event) == (
        "SPXW",
        dt.date(2025, 12, 19),
        "P",
        6700 * 10**9,
        41_205_000_000,
        12 * 10**9,
        (T_MS + 1) * 10**6,
    )
    assert spy.source == "polygon" and spy.stream == "options"
    nats_by_sym = {d["symbol"]: d for d in js}
    assert sorted(nats_by_sym) == sorted(by_sym) and len(js) == 2
    n = nats_by_sym["SPY251216C00676000"]
    assert (n["underlying"], n["expiry"], n["right"], n["strike"], n["price"], n["size"], n["ts_event"]) == (
        "SPY",
        "2025-12-16",
        "C",
        "676",
        "1.37",
        "4",
        T_MS * 10**6,
    )
    assert n["event_source"] == "polygon" and n["asset_class"] == "option"
