"""The IBKR producer's request book, pacing, settings and registry row (no sockets)."""

from __future__ import annotations

import argparse
import socket
import threading
import time

import pytest
from pydantic import ValidationError

from tickwire import vendors
from tickwire.contract.adapter import AuthError, Received
from tickwire.contract.envelope import Envelope
from tickwire.contract.records import Gap
from tickwire.contract.vendor import RunContext
from tickwire.ingest.cli import _parser as ingest_parser
from tickwire.settings import UnknownSettingError
from tickwire.simulators.cli import parser as sim_parser
from tickwire.vendors.ibkr import adapter as ad
from tickwire.vendors.ibkr import requests as rq
from tickwire.vendors.ibkr import wire
from tickwire.vendors.ibkr import wire_requests as wr
from tickwire.vendors.ibkr.link import TwsLink
from tickwire.vendors.ibkr.settings import IbkrSettings

PLAN = rq.Plan(l2_exchanges=("ARCA", "ISLAND"), depth_rows=5)


def kinds(subs: list[rq.Sub]) -> list[tuple[str, str, str]]:
    return [(s.kind, s.symbol, s.exchange) for s in subs]


def test_plan_l2_per_exchange_and_standard_smart() -> None:
    book = rq.RequestBook(PLAN, first_id=10)
    spy = book.add("SPY", l2=True)
    assert kinds(spy) == [
        ("depth", "SPY", "ARCA"),
        ("depth", "SPY", "ISLAND"),
        ("tbt_last", "SPY", "SMART"),
        ("tbt_bidask", "SPY", "SMART"),
        ("bars5s", "SPY", "SMART"),
    ]
    assert [s.req_id for s in spy] == [10, 11, 12, 13, 14]
    aapl = book.add("AAPL", l2=False)
    assert kinds(aapl)[0] == ("depth", "AAPL", "SMART") and len(aapl) == 4
    assert book.add("AAPL", l2=False) == []  # already subscribed
    assert book.context(11) == rq.Sub(11, "depth", "SPY", "ISLAND")


def test_requests_and_cancels_encode_per_kind() -> None:
    book = rq.RequestBook(PLAN)
    subs = book.add("SPY", l2=False)
    reqs = [wr.decode_request([wire.text(f) for f in book.request(s)]) for s in subs]
    assert [(r.op, r.req_id, r.exchange, r.detail, r.smart) for r in reqs] == [
        ("reqMktDepth", 1, "SMART", "rows=5", True),
        ("reqTickByTickData", 2, "SMART", "AllLast", False),
        ("reqTickByTickData", 3, "SMART", "BidAsk", False),
        ("reqRealTimeBars", 4, "SMART", "5s TRADES", False),
    ]
    cancels = [wr.decode_request([wire.text(f) for f in book.cancel(s)]) for s in subs]
    assert [(c.op, c.req_id) for c in cancels] == [
        ("cancelMktDepth", 1),
        ("cancelTickByTickData", 2),
        ("cancelTickByTickData", 3),
        ("cancelRealTimeBars", 4),
    ]
    _, top = book.fall_back(1)
    assert top is not None and wr.decode_request([wire.text(f) for f in book.request(top)]).op == "reqMktData"
    assert wr.decode_request([wire.text(f) for f in book.cancel(top)]).op == "cancelMktData"


def test_fallback_is_per_symbol_and_exchange_and_survives_renew() -> None:
    book = rq.RequestBook(PLAN)
    book.add("SPY", l2=True)
    book.add("QQQ", l2=True)
    dropped, top = book.fall_back(2)  # SPY ISLAND
    assert dropped == rq.Sub(2, "depth", "SPY", "ISLAND")
    assert top is not None and (top.kind, top.symbol, top.exchange) == ("top", "SPY", "ISLAND")
    assert book.fall_back(3) == (None, None)  # not a depth request
    old, new = book.renew()
    assert kinds(old) == kinds(new) and {s.req_id for s in old}.isdisjoint(s.req_id for s in new)
    assert ("top", "SPY", "ISLAND") in kinds(new) and ("depth", "SPY", "ARCA") in kinds(new)
    assert ("depth", "QQQ", "ISLAND") in kinds(new)
    assert book.context(2) == dropped  # late replies of an old id keep their context
    book.remove("SPY")
    assert kinds(book.add("SPY", l2=True))[:2] == [("depth", "SPY", "ARCA"), ("top", "SPY", "ISLAND")]


def test_reset_ids_follows_next_valid_id_and_never_reuses() -> None:
    book = rq.RequestBook(PLAN)
    book.add("SPY", l2=False)
    book.reset_ids(2)
    assert book.live == {} and book.add("SPY", l2=False)[0].req_id == 5
    book.reset_ids(100)
    assert book.add("QQQ", l2=False)[0].req_id == 100


def _frames(n: int, mid: int) -> list[bytes]:
    return [wire.frame([mid, 1, i]) for i in range(n)]


def test_pacer_token_bucket_limits_messages_per_second() -> None:
    p = rq.Pacer(rate=45, rtb_max=60, rtb_window_s=600)
    for f in _frames(100, 10):
        p.push(f)
    assert len(p.ready(0.0)) == 45  # the burst
    assert p.ready(0.0) == []
    assert len(p.ready(0.5)) == 22  # 22.5 tokens refilled
    got = p.ready(10.0)
    assert len(got) == 33 and wire.fields_of(got[-1][4:])[2] == "99"  # order kept
    assert len(p) == 0


def test_pacer_real_time_bar_window_does_not_block_other_requests() -> None:
    p = rq.Pacer(rate=1000, rtb_max=60, rtb_window_s=600)
    for f in _frames(70, wire.Out.REQ_REAL_TIME_BARS) + _frames(5, wire.Out.REQ_MKT_DEPTH):
        p.push(f)
    first = p.ready(0.0)
    assert sum(wire.msg_id(f[4:]) == 50 for f in first) == 60 and len(first) == 65
    assert p.rtb_waiting() == 10 and p.ready(599.0) == []
    assert len(p.ready(600.0)) == 10  # the window moved on


def test_settings_reject_unknown_keys_and_default_to_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    s = IbkrSettings.load()
    assert (s.port, s.client_id, s.l2_symbols, s.url) == (
        7497,
        1,
        ("SPY", "QQQ", "IWM"),
        "tws://127.0.0.1:7497",
    )
    assert s.rtb_max_requests == 60 and s.max_msgs_per_s == 45
    with pytest.raises(ValidationError):
        IbkrSettings.load(no_such_key=1)
    with pytest.raises(ValidationError):
        s.port = 1  # type: ignore[misc]  # frozen
    monkeypatch.setenv("IBKR_BOGUS", "1")
    with pytest.raises(UnknownSettingError, match="IBKR_BOGUS"):
        IbkrSettings.load()


def test_build_and_adapter_basics() -> None:
    args = argparse.Namespace(
        url="tws://127.0.0.1:4002",
        client_id=7,
        l2_symbols="SPY",
        symbols="AAPL,MSFT",
        l2_exchanges=None,
        depth_rows=None,
    )
    _, a, subs = ad.build(args, {"metrics_port": 0})
    assert (a.stream, a.url(subs), subs) == (
        "tws.7",
        "tws://127.0.0.1:4002",
        {"l2": frozenset({"SPY"}), "standard": frozenset({"AAPL", "MSFT"})},
    )
    frames = a.subscribe_frames(subs)
    ops = [wr.decode_request(wire.fields_of(f[4:])) for f in frames if isinstance(f, bytes)]
    assert [(r.op, r.symbol, r.exchange) for r in ops if r.op == "reqMktDepth"] == [
        ("reqMktDepth", "SPY", "ARCA"),
        ("reqMktDepth", "SPY", "ISLAND"),
        ("reqMktDepth", "SPY", "BATS"),
        ("reqMktDepth", "AAPL", "SMART"),
        ("reqMktDepth", "MSFT", "SMART"),
    ]
    depth = wire.frame(wire.MktDepthL2(ops[0].req_id, 0, "ARCA", 0, 1, "1.00", "100", False).to_fields())[4:]
    assert a.is_data(depth) and a.classify(depth) == "SPY"
    assert not a.is_data(wire.frame(wire.ErrorMsg(-1, 2104, "ok", "").to_fields())[4:])
    gone = a.unsubscribe_frames({"standard": frozenset({"MSFT"})})
    assert {wr.decode_request(wire.fields_of(f[4:])).symbol for f in gone if isinstance(f, bytes)} == {""}
    assert len(gone) == 4 and all(s.symbol != "MSFT" for s in a.book.live.values())
    with pytest.raises(ValueError, match="tws://"):
        a.open_link("ws://127.0.0.1:1", 1.0, lambda g: None)


def test_registry_row_and_run_components() -> None:
    spec = vendors.spec("ibkr")
    assert (spec.content_type, spec.raw_topic, spec.control_vendors) == ("tws", "ibkr.raw", ("ibkr",))
    ports = iter(range(40000, 40010))
    comps = vendors.load(spec.run or "")(RunContext(rate=5.0, free_port=lambda: next(ports)))
    assert [(c.name, c.role) for c in comps] == [("sim-ibkr", "simulator"), ("ingest-ibkr", "producer")]
    sim = sim_parser().parse_args(comps[0].argv[1:])
    assert (sim.vendor, sim.port, sim.control_port, sim.rate) == ("ibkr", 40000, 40001, 5.0)
    ingest = ingest_parser().parse_args(comps[1].argv[1:])
    assert (ingest.vendor, ingest.url, ingest.client_id) == ("ibkr", "tws://127.0.0.1:40000", 1)
    _, a, subs = ad.build(ingest, {"metrics_port": 0})
    assert a.url(subs) == "tws://127.0.0.1:40000" and comps[1].wants_metrics_port


class Peer:
    """A scripted TWS on a loopback socket: greets, then the test writes and reads messages."""

    def __init__(self) -> None:
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.conn: socket.socket | None = None
        self.reader = wire.FrameReader()
        self.t = threading.Thread(target=self._greet, daemon=True)
        self.t.start()

    def _greet(self) -> None:
        self.conn, _ = self.srv.accept()
        self.conn.settimeout(5)
        self.conn.recv(4 + 4 + 9)  # API\0 + v157..178
        self.write([176, "20261202 05:00:00 UTC"])
        self.read(1)  # startApi
        self.write([9, 1, 5], [15, 1, "DU1"], wire.ErrorMsg(-1, 2104, "farm OK", "").to_fields())

    def write(self, *msgs: list[wire.Field]) -> None:
        assert self.conn is not None
        self.conn.sendall(b"".join(wire.frame(m) for m in msgs))

    def read(self, n: int) -> list[wr.Request]:
        assert self.conn is not None
        out: list[bytes] = []
        while len(out) < n:
            data = self.conn.recv(65536)
            if not data:
                break
            out += self.reader.feed(data)
        return [wr.decode_request(wire.fields_of(b)) for b in out]


def _connected() -> tuple[ad.IbkrAdapter, TwsLink, Peer, list[Gap]]:
    peer = Peer()
    s = IbkrSettings.load(metrics_port=0, client_id=3, l2_symbols=("SPY",), l2_exchanges=("ARCA",))
    a = ad.IbkrAdapter(s, url=f"tws://127.0.0.1:{peer.port}")
    found: list[Gap] = []
    link = a.open_link(a.url({}), 2.0, found.append)
    peer.t.join(5)
    for f in a.subscribe_frames({"l2": frozenset({"SPY"})}):
        link.send(f)
    return a, link, peer, found


def _recv(link: TwsLink, n: int) -> list[Received]:
    out: list[Received] = []
    deadline = time.monotonic() + 5
    while len(out) < n and time.monotonic() < deadline:
        out += link.recv(0.05) or []
    return out


def _ctx(r: Received) -> dict[str, str]:
    return Envelope("ibkr", "tws.3", 1, 1, r.ts_recv, "tws", context=r.headers[0][1].decode()).context_map()


def test_link_publishes_with_context_and_acts_on_codes() -> None:
    a, link, peer, found = _connected()
    (notice,) = _recv(link, 1)  # the 2104 of the start-up: published, broadcast (no symbol)
    assert (notice.key, notice.broadcast, _ctx(notice)["kind"], _ctx(notice)["server_version"]) == (
        None,
        True,
        "system",
        "176",
    )
    reqs = peer.read(4)
    assert [(r.op, r.req_id, r.exchange) for r in reqs] == [
        ("reqMktDepth", 5, "ARCA"),
        ("reqTickByTickData", 6, "SMART"),
        ("reqTickByTickData", 7, "SMART"),
        ("reqRealTimeBars", 8, "SMART"),
    ]
    depth = wire.MktDepthL2(5, 0, "ARCA", 0, 1, "600.01", "300", False).to_fields()
    peer.write(depth, [81, 5, "0.01", "ARCA", 3], [13, 1, "x"])  # + tickReqParams (not published) + garbage
    got = _recv(link, 2)
    assert got[0].payload == wire.body(depth) and got[0].key == "SPY"
    assert _ctx(got[0]) == {
        "server_version": "176",
        "req_id": "5",
        "symbol": "SPY",
        "exchange": "ARCA",
        "kind": "depth",
    }
    assert (got[1].payload, _ctx(got[1])["kind"]) == (b"13\x001\x00x\x00", "system")  # bad input: kept raw
    peer.write(
        wire.ErrorMsg(5, 2152, "Need additional market data permissions - Depth: ARCA;", "").to_fields()
    )
    assert _ctx(_recv(link, 1)[0])["symbol"] == "SPY"
    assert [(r.op, r.req_id, r.symbol, r.exchange) for r in peer.read(2)] == [
        ("cancelMktDepth", 5, "", ""),
        ("reqMktData", 9, "SPY", "ARCA"),
    ]
    peer.write(wire.ErrorMsg(-1, 1100, "lost", "").to_fields())
    _recv(link, 1)
    peer.write(wire.ErrorMsg(-1, 1101, "restored, data lost", "").to_fields())
    _recv(link, 1)
    again = peer.read(4)
    assert sorted((r.op, r.req_id) for r in again) == [
        ("reqMktData", 13),
        ("reqRealTimeBars", 12),
        ("reqTickByTickData", 10),
        ("reqTickByTickData", 11),
    ]
    assert len(found) == 1 and found[0].ts_start < found[0].ts_end and "1101" in found[0].detail
    closing = threading.Thread(target=link.close)
    closing.start()
    cancels = peer.read(4)
    assert sorted((c.op, c.req_id) for c in cancels) == [
        ("cancelMktData", 13),
        ("cancelRealTimeBars", 12),
        ("cancelTickByTickData", 10),
        ("cancelTickByTickData", 11),
    ]
    assert peer.read(1) == []  # the link half-closed after its cancels and waits for us
    assert peer.conn is not None
    peer.conn.close()
    closing.join(2)
    assert not closing.is_alive() and a.link is None
    peer.srv.close()


def test_link_326_is_a_fatal_error_naming_the_client_id() -> None:
    _, link, peer, _ = _connected()
    peer.write(wire.ErrorMsg(-1, 326, "client id is already in use", "").to_fields())
    with pytest.raises(AuthError, match="client id 3 is already in use"):
        _recv(link, 10)
    assert len(peer.read(99)) == 4  # the 4 requests, then end of stream: the link closed its socket
    assert peer.conn is not None
    peer.conn.close()
    peer.srv.close()
