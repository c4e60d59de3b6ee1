"""One client connection of the IBKR simulator: handshake, startApi, requests, subscriptions."""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tickwire.vendors.ibkr import sim_script as script
from tickwire.vendors.ibkr.wire import (
    API_PREFIX,
    Field,
    In,
    Msg,
    Out,
    WireError,
    fields_of,
    frame,
    parse_version_range,
)
from tickwire.vendors.ibkr.wire_requests import Request, decode_request

if TYPE_CHECKING:
    from tickwire.vendors.ibkr.simulator import IbkrSimulator

ACCOUNT = "DU1234567"
FARM_OK = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)
KIND_BY_OP = {
    Out.REQ_MKT_DEPTH: "depth",
    Out.REQ_MKT_DATA: "top",
    Out.REQ_REAL_TIME_BARS: "bars5s",
}


@dataclass
class Sub:
    """One live subscription and its generator state."""

    req_id: int
    kind: str  # depth | top | tbt_last | tbt_bidask | bars5s
    symbol: str
    exchange: str
    rng: random.Random
    book: script.DepthBook | None = None
    next_bar: int = 0  # start of the bar being built (sim epoch seconds)
    steps: int = 0

    def emit(self, now: float, step: int) -> list[Msg]:
        t = int(now)
        if self.kind == "depth" and self.book is not None:
            return [self.book.next()]
        if self.kind == "tbt_last":
            return [script.trade(self.req_id, self.symbol, self.rng, t)]
        if self.kind == "tbt_bidask":
            return [script.bid_ask(self.req_id, self.symbol, self.rng, t)]
        if self.kind == "top":
            self.steps += 1
            return [script.top(self.req_id, self.symbol, self.rng, self.steps - 1)]
        out: list[Msg] = []
        while self.kind == "bars5s" and now >= self.next_bar + 5:
            out.append(script.bar(self.req_id, self.symbol, self.rng, self.next_bar))
            self.next_bar += 5
        return out


@dataclass
class Session:
    sim: IbkrSimulator
    id: int
    writer: asyncio.StreamWriter
    client_id: int = -1
    open: bool = True
    subs: dict[int, Sub] = field(default_factory=dict)
    rtb_times: deque[float] = field(default_factory=deque)

    # -- io --

    def write(self, fields: Sequence[Field]) -> None:
        if self.open:
            self.writer.write(frame(fields))

    async def drain(self) -> None:
        if not self.open:
            return
        try:
            await self.writer.drain()
        except ConnectionError:
            self.close()

    def close(self) -> None:
        if self.open:
            self.open = False
            self.subs.clear()
            with contextlib.suppress(Exception):
                self.writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> bytes:
        (n,) = struct.unpack(">I", await reader.readexactly(4))
        if n > 1 << 20:
            raise WireError(f"request length {n}")
        return await reader.readexactly(n)

    async def run(self, reader: asyncio.StreamReader) -> None:
        if await reader.readexactly(4) != API_PREFIX:
            raise ConnectionError("no API prefix")
        lo, hi = parse_version_range(await self._read(reader))
        version = min(hi, self.sim.server_version)
        if version < lo:
            raise ConnectionError(f"client versions {lo}..{hi} not served")
        self.write([version, time.strftime("%Y%m%d %H:%M:%S UTC", time.gmtime())])
        await self.drain()
        while self.open:
            payload = await self._read(reader)
            try:
                r = decode_request(fields_of(payload))
            except WireError:
                continue
            self.sim.on_request(self, r)
            self.handle(r)
            await self.drain()

    # -- requests --

    def handle(self, r: Request) -> None:
        sim = self.sim
        mid = r.msg_id
        if mid == Out.START_API:
            cid = int(r.detail or 0)
            taken = any(s.open and s is not self and s.client_id == cid for s in sim.sessions)
            self.client_id = cid
            if taken or cid in sim.busy_client_ids:
                msg = "Unable to connect as the client id is already in use. Retry with a unique client id."
                sim.error(self, -1, 326, msg)
                asyncio.get_running_loop().call_later(0.05, self.close)
                return
            self.write([In.NEXT_VALID_ID, 1, 1])
            self.write([In.MANAGED_ACCTS, 1, ACCOUNT])
            for code, text in FARM_OK:
                sim.error(self, -1, code, text)
        elif mid == Out.REQ_POSITIONS:
            self.write([In.POSITION_END, 1])
        elif mid == Out.REQ_OPEN_ORDERS:
            self.write([In.OPEN_ORDER_END, 1])
        elif mid == Out.REQ_COMPLETED_ORDERS:
            self.write([In.COMPLETED_ORDERS_END])
        elif mid == Out.REQ_ACCT_DATA:
            self.write([In.ACCT_DOWNLOAD_END, 1, ACCOUNT])
        elif mid == Out.REQ_ACCOUNT_UPDATES_MULTI:
            self.write([In.ACCOUNT_UPDATE_MULTI_END, 1, r.req_id])
        elif mid == Out.REQ_EXECUTIONS:
            self.write([In.EXECUTION_DATA_END, 1, r.req_id])
        elif mid == Out.REQ_CURRENT_TIME:
            self.write([In.CURRENT_TIME, 1, int(sim.sim_time())])
        elif mid == Out.REQ_CONTRACT_DATA:
            self.write(contract_details(r))
            self.write([In.CONTRACT_DATA_END, 1, r.req_id])
        elif mid in (
            Out.CANCEL_MKT_DEPTH,
            Out.CANCEL_MKT_DATA,
            Out.CANCEL_REAL_TIME_BARS,
            Out.CANCEL_TICK_BY_TICK_DATA,
        ):
            self.subs.pop(r.req_id, None)
        elif mid == Out.REQ_TICK_BY_TICK_DATA:
            kind = {"AllLast": "tbt_last", "Last": "tbt_last", "BidAsk": "tbt_bidask"}.get(r.detail)
            if kind is None:
                sim.error(self, r.req_id, 10190, f"Tick-by-tick type {r.detail} is not simulated")
            else:
                self._add(r, kind)
        elif mid in KIND_BY_OP:
            self._subscribe(r, KIND_BY_OP[Out(mid)])

    def _subscribe(self, r: Request, kind: str) -> None:
        sim = self.sim
        if kind == "depth":
            if sim.depth_limit and sum(1 for s in self.subs.values() if s.kind == "depth") >= sim.depth_limit:
                msg = f"Max number ({sim.depth_limit}) of market depth requests has been reached"
                sim.error(self, r.req_id, 309, msg, self._ctx(r, kind))
                return
            sub = self._add(r, kind)
            if r.exchange in sim.no_depth:
                self.no_depth_notice(sub)
        elif kind == "bars5s":
            now = time.monotonic()
            while self.rtb_times and now - self.rtb_times[0] > sim.rtb_window_s:
                self.rtb_times.popleft()
            if len(self.rtb_times) >= sim.rtb_limit:
                msg = "Invalid Real-time Query:Historical data request pacing violation"
                sim.error(self, r.req_id, 420, msg, self._ctx(r, kind))
                return
            self.rtb_times.append(now)
            self._add(r, kind)
        else:
            self._add(r, kind)

    def _ctx(self, r: Request, kind: str) -> Sub:
        rng = script.rng_for(self.sim.seed, r.symbol, r.exchange, kind)
        return Sub(r.req_id, kind, r.symbol, r.exchange, rng)

    def _add(self, r: Request, kind: str) -> Sub:
        sub = self._ctx(r, kind)
        if kind == "depth":
            sub.book = script.DepthBook(r.req_id, r.symbol, r.exchange, r.smart, self.sim.depth_rows, sub.rng)
        if kind == "bars5s":
            sub.next_bar = int(self.sim.sim_time()) // 5 * 5
        self.subs[r.req_id] = sub
        return sub

    def no_depth_notice(self, sub: Sub) -> None:
        """2152 for a depth subscription on an unentitled exchange; its depth stops."""
        others = ",".join(sorted({"ARCA", "ISLAND", "BATS", "IEX"} - {sub.exchange}))
        msg = (
            f"Exchanges - Depth: {others}; Top: {sub.exchange}; "
            f"Need additional market data permissions - Depth: {sub.exchange};"
        )
        self.sim.error(self, sub.req_id, 2152, msg, sub)
        self.subs.pop(sub.req_id, None)


def contract_details(r: Request) -> list[Field]:
    """contractData (10) at server version >= 164 (no version field): a US stock / ETF."""
    sym = r.symbol
    con_id = 100000 + sum(ord(c) * 7919**i for i, c in enumerate(sym)) % 900000
    return [
        In.CONTRACT_DATA,
        r.req_id,
        sym,
        "STK",
        "",
        "0",
        "",
        r.exchange or "SMART",
        "USD",
        sym,
        "NMS",
        sym,
        con_id,
        "0.01",
        "",
        "ACTIVETIM,LMT,MKT",
        "SMART,ARCA,ISLAND,BATS,IEX",
        1,
        0,
        f"{sym} SIM",
        "ARCA",
        "",
        "",
        "",
        "",
        "US/Eastern",
        "",
        "",
        "",
        "",
        0,
        1,
        "",
        "",
        "26",
        "",
        "ETF",
        "0.0001",
        "0.0001",
        "100",
    ]
