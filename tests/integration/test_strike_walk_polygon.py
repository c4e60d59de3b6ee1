"""Strike manager live: simulator -> stocks producer -> polygon.raw -> StrikeService -> control topic ->
options producer -> the simulator's option subscriptions, while the simulator walks SPY 670 -> 690 -> 670."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest

from tests.helpers import wait_for
from tests.integration.test_ingest_polygon import Producer, settings
from tickwire.ingest.runner import Runner
from tickwire.ingest.subscriptions import main as subscriptions_main
from tickwire.vendors.polygon.simulator import CONTRACTS_PATH, PolygonSimulator
from tickwire.vendors.polygon.strikes import StrikeService

pytestmark = pytest.mark.integration
N, K, RECENTRE = 3, 2, 2  # +/- 3 strikes, 2 expiries, re-centre 2 strike steps (step 1) away


def expected(sim: PolygonSimulator, centre: Decimal) -> set[str]:
    """Independent of the manager: listed strikes within N of the nearest strike, nearest K expiries."""
    near = centre.quantize(Decimal(1))
    return {f"T.{t}" for t, e, _r, k in sim.contracts if e in sim.expiries[:K] and abs(k - near) <= N}


def option_conn_subs(sim: PolygonSimulator) -> set[str]:
    conns = [c for c in sim.active() if c.path == "/options"]
    return set(conns[-1].subscriptions) if conns else set()


def actions(sim: PolygonSimulator) -> list[tuple[str, list[str]]]:
    return [a for c in sim.connections if c.path == "/options" for a in c.state.get("actions", [])]


def n_actions(sim: PolygonSimulator) -> int:
    return len(actions(sim))


def test_walk_670_690_670_follows_the_window_without_churn(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"itsw{uuid.uuid4().hex[:10]}."
    sim = PolygonSimulator(mode="manual", rate=0, symbols=["SPY"], seed=5, credentials={"good-key"})
    sim.start()
    services: list[StrikeService] = []
    producers: list[Producer] = []
    try:
        kw = {
            "strike_count": N,
            "expiries": K,
            "recenter_strikes": RECENTRE,
            "contracts_url": sim.http_url + CONTRACTS_PATH,
        }
        s = settings(kafka_bootstrap, prefix, **kw)
        stocks = Producer(s, sim.url + "/stocks", "stocks", {"T": frozenset({"SPY"})})
        producers.append(stocks)

        def start_strikes(r: Runner) -> None:
            services.append(StrikeService.for_runner(r).start())

        opts = Producer(s, sim.url + "/options", "options", {"T": frozenset()}, on_runner=start_strikes)
        producers.append(opts)
        wait_for(lambda: stocks.runner.ready.is_set() and opts.runner.ready.is_set(), 30, what="both ready")
        svc = services[0]

        centre = Decimal(670)
        walk = [Decimal(p) for p in range(670, 691, 5)] + [Decimal(p) for p in range(685, 669, -5)]
        before: set[str] = set()
        for price in walk:
            mark = n_actions(sim)
            sim.set_underlying(price)
            if abs(price - centre) >= RECENTRE:
                centre = price
            want = expected(sim, centre)
            wait_for(lambda want=want: option_conn_subs(sim) == want, 20, what=f"window at {price}")
            assert len(want) == (2 * N + 1) * K * 2
            # applied as a diff on the open connection: the dropped contracts out, the new ones in
            diff = [(a, set(ps)) for a, ps in actions(sim)[mark:]]
            assert diff == [
                (a, d) for a, d in (("unsubscribe", before - want), ("subscribe", want - before)) if d
            ]
            before = want
        assert svc.manager.recentres == len(walk)

        # inside the hysteresis band: prices seen, nothing (un)subscribed
        acted = n_actions(sim)
        for band_price in ("671.5", "668.6", "671.99", "670.01", "668.2"):
            seen = svc.prices_seen
            sim.set_underlying(Decimal(band_price))
            wait_for(lambda seen=seen: svc.prices_seen > seen, 20, what=f"price {band_price} seen")
        time.sleep(0.6)  # a change would have reached the simulator by now
        assert n_actions(sim) == acted and option_conn_subs(sim) == expected(sim, Decimal(670))
        assert opts.runner.connections == 1  # every change applied live, no reconnect

        # the current set is what `tickwire subscriptions list` shows
        capsys.readouterr()
        base = ["--bootstrap", kafka_bootstrap, "--topic-prefix", prefix]
        assert subscriptions_main(["list", "polygon-options", "T", *base]) == 0
        key, symbols = capsys.readouterr().out.strip().split("\t")
        assert key == "polygon-options:T"
        assert {f"T.{t}" for t in symbols.split(",")} == expected(sim, Decimal(670))
    finally:
        for svc in services:
            svc.stop()
        for p in producers:
            p.stop()
        sim.stop()
