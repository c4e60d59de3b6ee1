"""The shared pieces vendor folders use instead of their own copies (contract parser/adapter helpers,
the market simulator base)."""

from __future__ import annotations

import argparse

import pytest

from tickwire.contract.adapter import Subs
from tickwire.contract.adapter_base import (
    AdapterBase,
    add_rest_url_argument,
    await_frame,
    link_address,
    settings_overrides,
)
from tickwire.contract.book import Check, Verdict
from tickwire.contract.envelope import Envelope
from tickwire.contract.parser import ParseOutput, book_update, check_gap, record_base, seq_gap
from tickwire.contract.records import BookUpdate, Gap, Level, Trade
from tickwire.simulators.market_server import MarketSim, ReplayMarketSim

pytestmark = pytest.mark.unit

ENV = Envelope("vend", "stream.a", 3, 41, 1_765_000_000_000_000_000, "json")


def test_record_base_takes_identity_from_the_envelope() -> None:
    base = record_base(ENV, "BTC-USD", "crypto", 123, venue="X", sub_seq=2)
    assert base == {
        "symbol": "BTC-USD",
        "asset_class": "crypto",
        "source": "vend",
        "venue": "X",
        "stream": "stream.a",
        "session": 3,
        "seq": 41,
        "sub_seq": 2,
        "ts_event": 123,
        "ts_recv": ENV.ts_recv,
    }
    assert record_base(ENV, "SPY", "equity", 5, source="other")["source"] == "other"
    trade = Trade(**record_base(ENV, "SPY", "equity", 5), price=1, size=2)
    assert (trade.venue, trade.sub_seq, trade.source) == (None, 0, "vend")


def test_book_update_equals_the_record_base_construction() -> None:
    bids, asks = (Level(10, 1),), (Level(11, 2),)
    fast = book_update(ENV, "BTC-USD", "crypto", "X", 7, bids, asks, first_update_id=1, last_update_id=2)
    slow = BookUpdate(
        **record_base(ENV, "BTC-USD", "crypto", 7, venue="X"),
        bids=bids,
        asks=asks,
        first_update_id=1,
        last_update_id=2,
    )
    assert fast == slow and not fast.snapshot


def test_seq_gap_and_check_gap() -> None:
    gap = seq_gap(ENV, "SPY", before=4, after=9, ts_start=1, ts_end=2, detail="d")
    assert gap == Gap(
        source="vend",
        stream="stream.a",
        symbol="SPY",
        reason="vendor_seq_jump",
        detected_by="normalizer",
        last_seq_before=4,
        first_seq_after=9,
        ts_start=1,
        ts_end=2,
        detail="d",
    )
    resync = seq_gap(ENV, "SPY", before=None, after=1, ts_start=1, ts_end=1, detail="", reason="book_resync")
    assert (resync.reason, resync.last_seq_before, resync.detected_by) == ("book_resync", None, "normalizer")
    out = ParseOutput()
    chk = Check(Verdict.GAP, last_before=4, first_after=9, ts_before=1, new_resync=True)
    check_gap(out, ENV, "SPY", chk, 2, "d")
    check_gap(out, ENV, "SPY", chk, 3, "e")  # a second hole in the same frame: one resync request
    assert out.gaps == [gap, seq_gap(ENV, "SPY", before=4, after=9, ts_start=1, ts_end=3, detail="e")]
    assert out.resync == ["SPY"]
    quiet = ParseOutput()
    check_gap(quiet, ENV, "SPY", Check(Verdict.GAP, 4, 9, 1, new_resync=False), 2, "d")
    assert quiet.resync == [] and len(quiet.gaps) == 1


class _Verbs(AdapterBase):
    def __init__(self) -> None:
        self._url = "ws://here"

    def action_frames(self, verb: str, subs: Subs) -> list[str | bytes]:
        return [f"{verb}:{','.join(sorted(s for syms in subs.values() for s in syms))}"]


def test_adapter_base_defaults() -> None:
    a = _Verbs()
    subs = {"t": frozenset({"B", "A"})}
    assert a.url(subs) == "ws://here" and a.http_headers() == [] and a.rest_requests(subs, False) == []
    assert a.subscribe_frames(subs) == ["subscribe:A,B"]
    assert a.unsubscribe_frames(subs) == ["unsubscribe:A,B"]


class _Frames:
    def __init__(self, frames: list[bytes]) -> None:
        self.frames, self.timeouts = frames, []  # type: list[bytes], list[float]

    def send(self, data: str | bytes) -> None:
        raise AssertionError("await_frame only reads")

    def recv(self, timeout: float) -> bytes:
        self.timeouts.append(timeout)
        return self.frames.pop(0)


def test_await_frame_checks_every_frame_until_found() -> None:
    conn, checked = _Frames([b"a", b"b", b"c", b"d"]), []  # type: _Frames, list[bytes]
    await_frame(conn, 1.5, checked.append, lambda f: f == b"c")
    assert checked == [b"a", b"b", b"c"] and conn.frames == [b"d"] and conn.timeouts == [1.5] * 3

    def refuse(frame: bytes) -> None:
        raise PermissionError(frame.decode())

    with pytest.raises(PermissionError, match="d"):
        await_frame(conn, 1.0, refuse, lambda f: True)


def test_link_address() -> None:
    assert link_address("fix://127.0.0.1:9878", "fix", "FIX") == ("127.0.0.1", 9878)
    for bad in ("tcp://h:1", "fix://h", "fix://:5"):
        with pytest.raises(ValueError, match=r"FIX URL must be fix://HOST:PORT"):
            link_address(bad, "fix", "FIX")


class _Fast(ReplayMarketSim):
    default_rate = 50.0


def test_market_sim_defaults_and_seeded_rng() -> None:
    m = MarketSim()
    assert (m.mode, m.rate, m.port) == ("generate", 20.0, 0)
    r = _Fast(mode="replay", rate=0.0, seed=3, speed=2.0, loop=True, max_lifetime=5.0)
    assert (r.mode, r.rate, r.speed, r.loop_replay, r.max_lifetime) == ("replay", 0.0, 2.0, True, 5.0)
    assert r.recording.frames == [] and _Fast().rate == 50.0
    assert r.rng.random() == _Fast(seed=3).rng.random()
    with pytest.raises(TypeError):
        MarketSim(no_such_option=1)


def test_settings_overrides_keep_what_the_command_line_left_out() -> None:
    args = argparse.Namespace(depth_rows=7, client_id=None)
    fields = {"depth_rows": "depth_rows", "client_id": "client_id", "absent": "absent_field"}
    got = settings_overrides(args, fields, {"depth_rows": 1, "topic_prefix": "t."})
    assert got == {"depth_rows": 7, "topic_prefix": "t."}
    p = argparse.ArgumentParser()
    add_rest_url_argument(p)
    assert (
        p.parse_args(["--rest-url", "http://x"]).rest_url == "http://x" and p.parse_args([]).rest_url is None
    )
