"""The typed wire path of each JSON vendor parser equals its lenient path, frame by frame.

Every parser decodes a frame into its ``wire`` Structs first and reads only what the Structs refuse through
the generic dict path (``parse_lenient``). Both must give the same records, gaps, resyncs, control flags and
errors on everything recorded (fixture sessions, and the shared full sessions when present), so the fast
path can never drift from the behaviour the other parser tests pin down.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import pytest

from tickwire.contract.envelope import Envelope
from tickwire.contract.parser import ParseError
from tickwire.normalize.parse_cli import recorded_items
from tickwire.recording import received
from tickwire.vendors.alpaca.parser import PARSER as ALPACA
from tickwire.vendors.binance.parser import PARSER as BINANCE
from tickwire.vendors.coinbase.parser import PARSER as COINBASE

FIX = Path(__file__).resolve().parents[1] / "fixtures"
SHARED = Path("/work/shared/data/recorded")


def _outcome(parser: Any, fn: str, payload: bytes, env: Envelope, state: Any) -> Any:
    try:
        return getattr(parser, fn)(payload, env, state)
    except ParseError as exc:
        return ("ParseError", str(exc))


def _same(parser: Any, frames: list[tuple[bytes, Envelope]], meta: Any = None) -> int:
    typed, lenient = parser.new_state(meta), parser.new_state(meta)
    for i, (payload, env) in enumerate(frames):
        a = _outcome(parser, "parse", payload, env, typed)
        b = _outcome(parser, "parse_lenient", payload, env, lenient)
        assert a == b, f"frame {i}: typed {a!r} != lenient {b!r} for {payload[:200]!r}"
    return len(frames)


def _session(vendor: str, path: Path, stream: str) -> list[tuple[bytes, Envelope]]:
    return [(p, Envelope(vendor, stream, 1, n, ts, "json")) for n, (ts, p) in enumerate(received(path), 1)]


def test_binance_session() -> None:
    info = json.loads((FIX / "binance" / "exchangeInfo.min.json").read_bytes())
    assert _same(BINANCE, _session("binance", FIX / "binance" / "ws-session.txt", "spot"), info) > 100


def test_coinbase_session() -> None:
    products = json.loads((FIX / "coinbase" / "products.json").read_bytes())
    frames = _session("coinbase", FIX / "coinbase" / "ws-session-head.txt", "feed")
    assert _same(COINBASE, frames, products) > 100


@pytest.mark.parametrize(
    ("vendor", "name", "stream"),
    [("binance", "cryptofeed-BINANCE.ws.1.0", "spot"), ("coinbase", "cryptofeed-COINBASE.ws.28.0", "feed")],
)
def test_shared_full_sessions(vendor: str, name: str, stream: str) -> None:
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"{path} not found")
    frames = _session(vendor, path, stream)
    _same(BINANCE if vendor == "binance" else COINBASE, frames + frames)  # twice: stale diffs, duplicates


def test_alpaca_sessions_and_msgpack() -> None:
    frames: list[tuple[bytes, Envelope]] = []
    for name in ("stocks-iex.session.txt", "crypto-us.session.txt"):
        lines = (FIX / "alpaca" / name).read_bytes().splitlines()
        for n, (_line, payload, stream, ts) in enumerate(recorded_items(lines, ALPACA.stream_for_url), 1):
            frames.append((payload, Envelope("alpaca", stream or "", 1, n, ts or 0, "json")))
    for name, stream in (("crypto-us.msgpack", "crypto.us"), ("options-opra.msgpack", "options.opra")):
        data = (FIX / "alpaca" / name).read_bytes()
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(data)
        start = 0
        for _ in unpacker:
            env = Envelope("alpaca", stream, 1, 1, 1_766_000_000 * 10**9, "msgpack")
            frames.append((data[start : unpacker.tell()], env))
            start = unpacker.tell()
    assert _same(ALPACA, frames) > 10


@pytest.mark.parametrize(
    "frame",
    [
        b'[{"T":"t","S":"AAPL","p":1,"s":-1,"t":"2024-02-26T16:00:00Z"}]',
        b'[{"T":"t","S":" ","p":1,"s":1,"t":"2024-02-26T16:00:00Z"}]',
        b'[{"T":"q","S":"AAPL","bp":1.5,"bs":1,"ap":1e400,"as":1,"t":"2024-02-26T16:00:00Z"}]',
        b'[{"T":"b","S":"AAPL","o":1,"h":2,"l":1,"c":2,"v":3,"n":2.5,"t":"2024-02-26T16:00:00Z"}]',
        b'[{"T":"t","S":"AAPL","p":1,"s":1,"c":5,"t":"2024-02-26T16:00:00Z"}]',
    ],
)
def test_alpaca_invalid_messages_fail_alike(frame: bytes) -> None:
    env = Envelope("alpaca", "stocks.iex", 1, 1, 1_708_963_200_011_480_000, "json")
    for fn in ("parse", "parse_lenient"):
        with pytest.raises(Exception) as info:  # any class: the point is the same class and text
            getattr(ALPACA, fn)(frame, env, ALPACA.new_state())
        if fn == "parse":
            first = (type(info.value), str(info.value))
        else:
            assert (type(info.value), str(info.value)) == first


@pytest.mark.skipif(not Path("/work/shared/data/dbn").is_dir(), reason="no shared DBN files")
def test_databento_trade_short_path_equals_general_path() -> None:
    from tickwire.contract.parser import ParseOutput
    from tickwire.vendors.databento.parser import PARSER as DBN
    from tickwire.vendors.databento.parser import _decode

    path = Path("/work/shared/data/dbn/test_data.trades.v3.dbn.zst")
    env = Envelope("databento", "replay.GLBX.MDP3", 5, 1, 1_900_000_000_000_000_000, "dbn")
    fast_state, slow_state = DBN.new_state(), DBN.new_state()
    smap, recs = _decode(path.read_bytes(), fast_state)
    _decode(path.read_bytes(), slow_state)
    fast, slow = ParseOutput(), ParseOutput()
    for i, r in enumerate(recs):
        DBN._trade(i, r, smap, env, fast_state, fast)
        DBN._record(i, r, smap, env, slow_state, slow)
    assert fast.records and fast == slow
    assert fast_state.last_seq == slow_state.last_seq
