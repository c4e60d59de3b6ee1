"""The IBKR simulator against the official-style client ``ib_async`` 2.1.0 (fidelity), plus its own books.

What ib_async changes, so it is not compared: tick-by-tick objects carry the local arrival time instead of
the wire time (``wrapper.tickByTickAllLast`` uses ``self.lastTime``); a depth *delete* is reported with
size 0 and the price ib_async held at that position, and its DOM treats an insert as overwrite-at-position
where TWS shifts the rows below — so ib_async's book is not compared, the simulator's own book is
rebuilt from the sent messages with TWS semantics instead.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from ib_async import IB, Stock, Ticker

from tests.helpers import wait_for
from tickwire.vendors.ibkr.sim_script import DepthBook
from tickwire.vendors.ibkr.simulator import IbkrSimulator

pytestmark = pytest.mark.integration


@pytest.fixture
def sim() -> Iterator[IbkrSimulator]:
    s = IbkrSimulator(seed=3, rate=25, speed=20, depth_rows=4)
    s.start()
    yield s
    s.stop()


def _sent(sim: IbkrSimulator, kind: str, req_id: int) -> list[dict[str, Any]]:
    return [e["values"] for e in sim.sent() if e["kind"] == kind and e["req_id"] == req_id]


async def _session(sim: IbkrSimulator) -> dict[str, Any]:
    ib = IB()
    await ib.connectAsync("127.0.0.1", sim.port, clientId=21, timeout=5)
    got: dict[str, list[Any]] = {"dom": [], "dom_smart": [], "last": [], "bidask": []}

    def on_pending(tickers: set[Ticker]) -> None:
        for t in tickers:
            got["dom" if t.contract is not None and t.contract.symbol == "SPY" else "dom_smart"] += t.domTicks
            for tick in t.tickByTicks:
                got["last" if hasattr(tick, "exchange") else "bidask"].append(tick)

    ib.pendingTickersEvent += on_pending
    accounts = ib.managedAccounts()
    [spy] = await ib.qualifyContractsAsync(Stock("SPY", "SMART", "USD"))
    arca = Stock("SPY", "ARCA", "USD", conId=spy.conId)
    ib.reqMktDepth(arca, 4)
    [qqq] = await ib.qualifyContractsAsync(Stock("QQQ", "SMART", "USD"))
    ib.reqMktDepth(qqq, 3, isSmartDepth=True)  # several market makers in one book
    ib.reqTickByTickData(spy, "AllLast")
    ib.reqTickByTickData(spy, "BidAsk")
    bars = ib.reqRealTimeBars(spy, 5, "TRADES", False)
    t0 = time.time()
    for _ in range(100):
        await asyncio.sleep(0.05)
        if len(bars) >= 4 and min(len(got["dom"]), len(got["dom_smart"]), len(got["last"])) >= 30:
            break
    ib.cancelMktDepth(arca)
    ib.cancelMktDepth(qqq, isSmartDepth=True)
    ib.cancelTickByTickData(spy, "AllLast")
    ib.cancelTickByTickData(spy, "BidAsk")
    ib.cancelRealTimeBars(bars)
    for _ in range(100):  # replies in flight when the cancels arrived: until ib_async has them all
        await asyncio.sleep(0.05)
        cancelled = len([r for r in sim.requests() if r["op"].startswith("cancel")]) == 5
        if cancelled and len(got["dom"]) + len(got["dom_smart"]) == len(
            [e for e in sim.sent() if e["kind"] == "depth"]
        ):
            break
    ib.disconnect()
    return {**got, "bars": list(bars), "accounts": accounts, "spy": spy, "t0": t0}


def test_ib_async_decodes_what_was_sent(sim: IbkrSimulator) -> None:
    got = asyncio.run(_session(sim))
    assert got["accounts"] == ["DU1234567"] and got["spy"].primaryExchange == "ARCA"
    reqs = {(r["op"], r["detail"]): r for r in sim.requests() if r["op"].startswith("req")}
    for rows, dom in (("rows=4", got["dom"]), ("rows=3", got["dom_smart"])):
        sent_dom = _sent(sim, "depth", reqs[("reqMktDepth", rows)]["req_id"])
        assert len(dom) == len(sent_dom) >= 30
        for tick, v in zip(dom, sent_dom, strict=True):
            assert (tick.position, tick.marketMaker, tick.operation, tick.side) == (
                v["position"],
                v["market_maker"],
                v["operation"],
                v["side"],
            )
            if v["operation"] != 2:
                assert (Decimal(str(tick.price)), Decimal(str(tick.size))) == (
                    Decimal(v["price"]),
                    Decimal(v["size"]),
                )
            else:  # deletes: ib_async reports size 0 and the price it held at that position
                assert tick.size == 0
    assert len({v["market_maker"] for v in sent_dom}) > 1 and all(v["is_smart"] for v in sent_dom)
    last_id = reqs[("reqTickByTickData", "AllLast")]["req_id"]
    sent_last = _sent(sim, "tbt_last", last_id)
    assert len(got["last"]) == len(sent_last) > 10
    for tick, v in zip(got["last"], sent_last, strict=True):
        assert (tick.tickType, Decimal(str(tick.price)), Decimal(str(tick.size))) == (
            v["tick_type"],
            Decimal(v["price"]),
            Decimal(v["size"]),
        )
        assert (tick.exchange, tick.specialConditions) == (v["exchange"], v["special_conditions"])
        assert (tick.tickAttribLast.pastLimit, tick.tickAttribLast.unreported) == (
            bool(v["mask"] & 1),
            bool(v["mask"] & 2),
        )
        assert tick.time.timestamp() >= got["t0"] - 1  # arrival time, not the wire time (not compared)
    ba_id = reqs[("reqTickByTickData", "BidAsk")]["req_id"]
    sent_ba = _sent(sim, "tbt_bidask", ba_id)
    assert len(got["bidask"]) == len(sent_ba) > 10
    for tick, v in zip(got["bidask"], sent_ba, strict=True):
        assert [Decimal(str(x)) for x in (tick.bidPrice, tick.askPrice, tick.bidSize, tick.askSize)] == [
            Decimal(v[k]) for k in ("bid_price", "ask_price", "bid_size", "ask_size")
        ]
        assert tick.tickAttribBidAsk.bidPastLow is bool(v["mask"] & 1)
    bars_id = reqs[("reqRealTimeBars", "5s TRADES")]["req_id"]
    sent_bars = _sent(sim, "bars5s", bars_id)
    assert len(got["bars"]) == len(sent_bars) >= 4
    for bar, v in zip(got["bars"], sent_bars, strict=True):
        assert int(bar.time.timestamp()) == v["time"] and v["time"] % 5 == 0  # bar start, 5 s aligned
        assert [Decimal(str(x)) for x in (bar.open_, bar.high, bar.low, bar.close, bar.volume, bar.wap)] == [
            Decimal(v[k]) for k in ("open", "high", "low", "close", "volume", "wap")
        ]
        assert bar.count == v["count"]
    assert [e["time"] for e in sent_bars] == list(range(sent_bars[0]["time"], sent_bars[-1]["time"] + 1, 5))
    cancels = sorted(r["op"] for r in sim.requests() if r["op"].startswith("cancel"))
    assert (
        cancels == ["cancelMktDepth", "cancelMktDepth", "cancelRealTimeBars"] + ["cancelTickByTickData"] * 2
    )


def test_depth_messages_rebuild_the_simulator_book_with_tws_semantics(sim: IbkrSimulator) -> None:
    book = asyncio.run(_connect_and_depth(sim))
    books: dict[int, list[tuple[str, str, str]]] = {0: [], 1: []}
    inserts_shifting = 0
    for e in sim.sent():
        if e["kind"] != "depth":
            continue
        v = e["values"]
        side, pos = books[v["side"]], v["position"]
        row = (v["price"], v["size"], v["market_maker"])
        if v["operation"] == 0:
            inserts_shifting += pos < len(side)
            side.insert(pos, row)
        elif v["operation"] == 1:
            side[pos] = row
        else:
            del side[pos]
    for side, levels in ((1, book.bids), (0, book.asks)):
        want = [(f"{lv.cents // 100}.{lv.cents % 100:02d}", str(lv.size), lv.mm) for lv in levels]
        assert books[side] == want
    bids = [Decimal(p) for p, _, _ in books[1]]
    asks = [Decimal(p) for p, _, _ in books[0]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
    assert inserts_shifting > 0  # the case ib_async's overwrite-at-position DOM gets wrong


async def _connect_and_depth(sim: IbkrSimulator) -> DepthBook:
    ib = IB()
    await ib.connectAsync("127.0.0.1", sim.port, clientId=22, timeout=5)
    ib.reqMktDepth(Stock("QQQ", "ISLAND", "USD", conId=1), 4)
    await asyncio.sleep(0.8)
    sim.paused = True  # stop the market so the log and the book agree
    await asyncio.sleep(0.2)
    book = next(iter(sim.sessions[0].subs.values())).book
    assert book is not None
    book = copy.deepcopy(book)
    ib.disconnect()
    return book


def test_control_endpoint_and_client_id_in_use(sim: IbkrSimulator) -> None:
    def get(path: str) -> Any:
        with urllib.request.urlopen(f"{sim.http_url}{path}", timeout=5) as r:
            return json.loads(r.read())

    assert get("/control/command?cmd=client_id_in_use&client_id=31") == {"ok": True}

    async def connect() -> str:
        ib = IB()
        errors: list[int] = []
        ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
        with pytest.raises((ConnectionError, TimeoutError, asyncio.TimeoutError)):
            await ib.connectAsync("127.0.0.1", sim.port, clientId=31, timeout=1)
        return ",".join(map(str, errors))

    assert "326" in asyncio.run(connect())
    wait_for(lambda: get("/control/stats")["active"] == 0, 5, what="326 session closed")
    sent = get("/control/sent?since=0")
    assert [e["values"]["code"] for e in sent] == [326]
    assert [r["op"] for r in get("/control/requests")] == ["startApi"]
