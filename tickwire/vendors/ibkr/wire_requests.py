"""TWS API client requests: the contract fields, request encoders (client -> server) and their decoder.

Layouts as ``ib_async`` 2.1.0 ``client.py`` writes them; the producer encodes, the simulator decodes.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from tickwire.vendors.ibkr.wire import Field, Out, WireError

# ---------------------------------------------------------------- contracts


class Contract(msgspec.Struct, frozen=True):
    """A US stock contract as the 12 contract fields of a request."""

    symbol: str
    exchange: str = "SMART"
    currency: str = "USD"
    sec_type: str = "STK"
    primary_exchange: str = ""
    con_id: int = 0

    def fields(self) -> list[Field]:
        return [
            self.con_id,
            self.symbol,
            self.sec_type,
            "",  # lastTradeDateOrContractMonth
            "0.0",  # strike
            "",  # right
            "",  # multiplier
            self.exchange,
            self.primary_exchange,
            self.currency,
            "",  # localSymbol
            "",  # tradingClass
        ]

    @classmethod
    def from_fields(cls, f: Sequence[str]) -> Contract:
        """From the 12 contract fields of a request."""
        return cls(
            symbol=f[1],
            exchange=f[7],
            currency=f[9],
            sec_type=f[2],
            primary_exchange=f[8],
            con_id=int(f[0] or 0),
        )


# ----------------------------------------------------------------- requests


def start_api(client_id: int, capabilities: str = "") -> list[Field]:
    return [Out.START_API, 2, client_id, capabilities]


def req_mkt_depth(req_id: int, c: Contract, rows: int, smart: bool) -> list[Field]:
    return [Out.REQ_MKT_DEPTH, 5, req_id, *c.fields()[:12], rows, smart, ""]


def cancel_mkt_depth(req_id: int, smart: bool) -> list[Field]:
    return [Out.CANCEL_MKT_DEPTH, 1, req_id, smart]


def req_tick_by_tick(
    req_id: int, c: Contract, tick_type: str, n: int = 0, ignore_size: bool = False
) -> list[Field]:
    return [Out.REQ_TICK_BY_TICK_DATA, req_id, *c.fields(), tick_type, n, ignore_size]


def cancel_tick_by_tick(req_id: int) -> list[Field]:
    return [Out.CANCEL_TICK_BY_TICK_DATA, req_id]


def req_real_time_bars(req_id: int, c: Contract, what: str = "TRADES", use_rth: bool = False) -> list[Field]:
    return [Out.REQ_REAL_TIME_BARS, 3, req_id, *c.fields(), 5, what, use_rth, ""]


def cancel_real_time_bars(req_id: int) -> list[Field]:
    return [Out.CANCEL_REAL_TIME_BARS, 1, req_id]


def req_mkt_data(req_id: int, c: Contract, generic_ticks: str = "", snapshot: bool = False) -> list[Field]:
    return [Out.REQ_MKT_DATA, 11, req_id, *c.fields(), False, generic_ticks, snapshot, False, ""]


def cancel_mkt_data(req_id: int) -> list[Field]:
    return [Out.CANCEL_MKT_DATA, 2, req_id]


def req_current_time() -> list[Field]:
    return [Out.REQ_CURRENT_TIME, 1]


class Request(msgspec.Struct, frozen=True):
    """A decoded client request (the simulator's view). ``detail``: tick type, bar size/what, rows."""

    op: str  # e.g. "reqMktDepth", "cancelTickByTickData"
    msg_id: int
    req_id: int = -1
    symbol: str = ""
    exchange: str = ""
    detail: str = ""
    smart: bool = False


_REQ_NAMES = {
    Out.REQ_MKT_DATA: "reqMktData",
    Out.CANCEL_MKT_DATA: "cancelMktData",
    Out.REQ_OPEN_ORDERS: "reqOpenOrders",
    Out.REQ_ACCT_DATA: "reqAccountUpdates",
    Out.REQ_EXECUTIONS: "reqExecutions",
    Out.REQ_CONTRACT_DATA: "reqContractDetails",
    Out.REQ_MKT_DEPTH: "reqMktDepth",
    Out.CANCEL_MKT_DEPTH: "cancelMktDepth",
    Out.REQ_CURRENT_TIME: "reqCurrentTime",
    Out.REQ_REAL_TIME_BARS: "reqRealTimeBars",
    Out.CANCEL_REAL_TIME_BARS: "cancelRealTimeBars",
    Out.REQ_POSITIONS: "reqPositions",
    Out.START_API: "startApi",
    Out.REQ_ACCOUNT_UPDATES_MULTI: "reqAccountUpdatesMulti",
    Out.REQ_TICK_BY_TICK_DATA: "reqTickByTickData",
    Out.CANCEL_TICK_BY_TICK_DATA: "cancelTickByTickData",
    Out.REQ_COMPLETED_ORDERS: "reqCompletedOrders",
}


def decode_request(f: Sequence[str]) -> Request:
    """A client message's fields -> ``Request`` (unknown ids keep op ``msg<N>``)."""
    try:
        mid = int(f[0])
        op = _REQ_NAMES.get(Out(mid), "") if mid in Out._value2member_map_ else f"msg{mid}"
        if mid in (Out.REQ_MKT_DEPTH, Out.REQ_REAL_TIME_BARS, Out.REQ_MKT_DATA, Out.REQ_CONTRACT_DATA):
            c = Contract.from_fields(f[3:15])
            if mid == Out.REQ_MKT_DEPTH:
                return Request(op, mid, int(f[2]), c.symbol, c.exchange, f"rows={f[15]}", f[16] == "1")
            detail = f"{f[15]}s {f[16]}" if mid == Out.REQ_REAL_TIME_BARS else f[16] if len(f) > 16 else ""
            return Request(op, mid, int(f[2]), c.symbol, c.exchange, detail)
        if mid == Out.REQ_TICK_BY_TICK_DATA:
            c = Contract.from_fields(f[2:14])
            return Request(op, mid, int(f[1]), c.symbol, c.exchange, f[14])
        if mid == Out.CANCEL_TICK_BY_TICK_DATA:
            return Request(op, mid, int(f[1]))
        if mid == Out.CANCEL_MKT_DEPTH:
            return Request(op, mid, int(f[2]), smart=f[3] == "1")
        if mid in (Out.CANCEL_MKT_DATA, Out.CANCEL_REAL_TIME_BARS, Out.REQ_EXECUTIONS):
            return Request(op, mid, int(f[2]))
        if mid == Out.REQ_ACCOUNT_UPDATES_MULTI:
            return Request(op, mid, int(f[2]))
        if mid == Out.START_API:
            return Request(op, mid, -1, detail=f[2])
        return Request(op, mid)
    except (IndexError, ValueError) as exc:
        raise WireError(f"malformed request {list(f)[:4]}: {exc}") from None
