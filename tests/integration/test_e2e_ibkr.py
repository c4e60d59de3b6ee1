"""IBKR end to end, as separate processes: TWS simulator -> `tickwire ingest ibkr` -> ibkr.raw ->
`tickwire normalize` -> canonical topics -> `tickwire bridge redis` -> seed 004 keys. Every Redis value
is compared with values computed here, independently, from the simulator's sent log: per-exchange books
(TWS position semantics), the aggregated NBBO ticker, the trades list, 5 s bars, the 1-minute bars rolled
up from them, and the producer status keys from its heartbeats."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import unique_name, wait_for
from tests.integration.cluster_pipeline import read_rows
from tests.integration.test_bridge_helpers import TICKWIRE, Proc, bridge_proc, create_topics, procs  # noqa: F401
from tickwire import vendors
from tickwire.vendors.ibkr.simulator import IbkrSimulator

pytestmark = pytest.mark.integration

CLIENT = 23
EXCHANGES = ("ARCA", "ISLAND", "BATS")  # BATS: no depth entitlement (2152) -> top of book
D = Decimal


def _sent(sim: IbkrSimulator) -> list[dict[str, Any]]:
    return [e for e in sim.sent() if e["client_id"] == CLIENT]


def _received(sent: list[dict[str, Any]], raw: list[bytes]) -> list[dict[str, Any]]:
    """The sent log up to what reached ibkr.raw. The producer stops (SIGTERM) while the simulator still
    streams: messages it wrote that the producer never read can only be at the end, and are not owed;
    one missing anywhere else is a loss and fails here."""
    left = Counter(raw)  # system messages are broadcast to every raw partition: extra copies are fine
    missing = []
    for i, e in enumerate(sent):
        payload = "".join(f + "\0" for f in e["fields"]).encode()
        if left[payload] > 0:
            left[payload] -= 1
        else:
            missing.append(i)
    tail = len(sent) - len(missing)
    assert missing == list(range(tail, len(sent))), f"sent but not on ibkr.raw, mid-session: {missing[:5]}"
    assert len(missing) < 50, f"{len(missing)} messages at the end never reached ibkr.raw"
    return sent[:tail]


def expected_books(sent: list[dict[str, Any]]) -> dict[str, tuple[list[tuple[D, D]], list[tuple[D, D]]]]:
    """exchange -> (bids best first, asks best first), sizes of rows at one price summed. Depth rows by
    position (insert shifts down, delete shifts up), top-of-book ticks for the 2152 exchange; a 1101
    (data lost) starts every book afresh."""
    rows: dict[str, dict[str, list[tuple[D, D]]]] = {}
    tops: dict[str, dict[str, tuple[D, D]]] = {}
    for e in sent:
        f = e["fields"]
        if e["kind"] == "system" and f[0] == "4" and f[3] == "1101":
            rows.clear()
            tops.clear()
        elif e["kind"] == "depth" and f[0] == "13":
            pos, op, side, price, size = int(f[3]), f[5], f[6], D(f[7]), D(f[8])
            book = rows.setdefault(e["exchange"], {"0": [], "1": []})[side]
            if op == "0":
                book.insert(pos, (price, size))
            elif op == "1":
                book[pos] = (price, size)
            else:
                del book[pos]
        elif e["kind"] == "top" and f[0] in ("1", "2") and f[3] in ("0", "1", "2", "3"):
            side = "1" if f[3] in ("0", "1") else "0"
            top = tops.setdefault(e["exchange"], {})
            price, size = (D(f[4]), D(f[5])) if f[0] == "1" else (top.get(side, (D(0), D(0)))[0], D(f[4]))
            top[side] = (price, size if price > 0 else D(0))
    for ex, top in tops.items():
        rows[ex] = {side: [lv] for side, lv in top.items() if lv[0] > 0}
    out = {}
    for ex, sides in rows.items():
        agg: list[dict[D, D]] = [{}, {}]
        for i, side in enumerate(("1", "0")):
            for p, s in sides.get(side, []):
                agg[i][p] = agg[i].get(p, D(0)) + s
        out[ex] = (sorted(agg[0].items(), reverse=True), sorted(agg[1].items()))
    return out


def expected_minutes(bars: list[list[str]]) -> list[dict[str, D]]:
    """Every minute with 5 s bars, oldest first: the closed ones, and the open one the producer's SIGTERM
    closes (its end-of-session marker makes the normalizer publish the partial minute)."""
    groups: dict[int, list[list[str]]] = {}
    for f in bars:
        t = int(f[3])
        groups.setdefault(t - t % 60, []).append(f)
    return [
        {
            "open": D(g[0][4]), "high": max(D(f[5]) for f in g), "low": min(D(f[6]) for f in g),
            "close": D(g[-1][7]), "volume": sum((D(f[8]) for f in g), D(0)),
        }
        for m, g in sorted(groups.items())
    ]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_READY = {"normalize.log": "partitions assigned", "bridge-redis.log": "partitions assigned",
          "ingest.log": "connecting"}  # fmt: skip


def _started(log: Path) -> bool:
    return log.exists() and _READY[log.name] in log.read_text(errors="replace")


def _json(r: Any, key: str) -> Any:
    raw = r.get(key)
    return None if raw is None else json.loads(raw, parse_float=D, parse_int=D)


def _list(r: Any, key: str) -> list[Any]:
    return [json.loads(x, parse_float=D, parse_int=D) for x in r.lrange(key, 0, -1)]


@pytest.mark.timeout(60)
def test_simulator_to_redis_books_nbbo_trades_bars(
    kafka_bootstrap: str,
    redis_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    procs: list[Proc],  # noqa: F811
) -> None:
    import redis

    spec = vendors.spec("ibkr")
    assert spec.venue_books and spec.bar_rollup and spec.status_keys, (
        "the ibkr SPEC must declare venue_books=True, bar_rollup=True and its status_keys"
    )
    t_start = time.monotonic()
    prefix = unique_name("e2eib") + "."
    kp = unique_name("e2eibk") + ":"
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "TICKWIRE_LOG_LEVEL": "INFO"}
    canonical = [
        "stock_book_realtime",
        "stock_quotes_realtime",
        "stock_trades_realtime",
        "stock_bars_staging",
    ]
    create_topics(
        kafka_bootstrap, [prefix + t for t in ("ibkr.raw", "tickwire.gaps", "tickwire.health", *canonical)]
    )
    norm = [TICKWIRE, "normalize", "--topic-prefix", prefix, "--vendors", "ibkr", "--create-topics",
            "--metrics-port", "0"]  # fmt: skip
    procs.append(Proc(norm, tmp_path / "normalize.log", env).start())
    redis_args = ["--topic-prefix", prefix, "--key-prefix", kp, "--metrics-port", "0"]
    redis_args += ["--redis-url", redis_url, "--bootstrap", kafka_bootstrap]
    procs.append(bridge_proc("redis", redis_args, tmp_path / "bridge-redis.log", env).start())
    # The producer starts first, retrying against a port nobody listens on yet: the simulated clock (20x the
    # wall clock) starts with the simulator, so process start-up time does not push tick times ahead.
    port = _free_port()
    ingest = [TICKWIRE, "ingest", "ibkr", "--url", f"tws://127.0.0.1:{port}", "--client-id", str(CLIENT)]
    ingest += ["--l2-symbols", "SPY", "--l2-exchanges", ",".join(EXCHANGES), "--depth-rows", "5"]
    ingest += [
        "--topic-prefix",
        prefix,
        "--bootstrap",
        kafka_bootstrap,
        "--no-control",
        "--metrics-port",
        "0",
    ]
    fast = {"IBKR_HEARTBEAT_INTERVAL_S": "1", "IBKR_BACKOFF_INITIAL_S": "0.1", "IBKR_BACKOFF_MAX_S": "0.2"}
    producer = Proc(ingest, tmp_path / "ingest.log", {**env, **fast}).start()
    procs.append(producer)
    for name in ("normalize", "bridge-redis", "ingest"):
        wait_for(lambda n=name: _started(tmp_path / f"{n}.log"), 20, what=f"{name} started")
    sim = IbkrSimulator(port=port, seed=5, rate=10, speed=20, depth_rows=5)
    sim.no_depth.add("BATS")  # before it listens: the first BATS depth request already gets 2152
    sim.start()
    r = redis.Redis.from_url(redis_url)
    request.addfinalizer(lambda: [r.delete(k) for k in r.scan_iter(match=f"{kp}*", count=1000)])
    try:
        # Two whole simulated minutes of 5 s bars (~7 s) with a 1100 -> 1101 (data lost: every book reset,
        # everything resubscribed) in the middle, then SIGTERM (the producer cancels everything).
        wait_for(lambda: sum(1 for e in _sent(sim) if e["kind"] == "bars5s") >= 10, 20, what="10 bars")
        sim.command("connectivity", restore="1101", seconds=0.3)
        wait_for(lambda: sum(1 for e in _sent(sim) if e["kind"] == "bars5s") >= 26, 20, what="26 bars")
        wait_for(lambda: r.get(f"{kp}ibkr:connected") == b"1", 10, what="ibkr:connected = 1")
        producer.stop(signal.SIGTERM, timeout=15)
        assert producer.p is not None and producer.p.returncode == 0
    finally:
        sim.stop()
    sent = _received(_sent(sim), [r.value for r in read_rows(kafka_bootstrap, [prefix + "ibkr.raw"])])
    books = expected_books(sent)
    trades = [e["fields"] for e in sent if e["kind"] == "tbt_last"]
    bars = [e["fields"] for e in sent if e["kind"] == "bars5s"]
    assert set(books) == set(EXCHANGES) and len(trades) > 20 and len(bars) >= 26
    assert [e["fields"][3] for e in sent if e["kind"] == "system" and e["fields"][3] in ("1100", "1101")] == [
        "1100",
        "1101",
    ]
    i1101 = next(i for i, e in enumerate(sent) if e["kind"] == "system" and e["fields"][3] == "1101")
    assert {e["exchange"] for e in sent[i1101:] if e["kind"] in ("depth", "top")} == set(EXCHANGES)  # rebuilt
    assert len({f[3] for f in bars}) == len(bars)  # no 5 s bar sent twice (a resubscribe starts a new one)
    want_trades = [(D(f[4]), D(f[5]), f[7]) for f in reversed(trades)][:1000]
    want_5s = [(D(f[4]), D(f[5]), D(f[6]), D(f[7]), D(f[8])) for f in reversed(bars)]
    want_1m = list(reversed(expected_minutes(bars)))
    assert len(want_1m) >= 2

    def book_of(ex: str) -> Any:
        doc = _json(r, f"{kp}market:SPY:{ex}:book")
        if doc is None:
            return None
        return (
            [(lv["price"], lv["size"]) for lv in doc["bids"]],
            [(lv["price"], lv["size"]) for lv in doc["asks"]],
        )

    ohlcv = ("open", "high", "low", "close", "volume")

    def state() -> dict[str, Any]:
        return {
            "books": {ex: book_of(ex) for ex in EXCHANGES},
            "trades": [(t["price"], t["size"], t["venue"]) for t in _list(r, f"{kp}market:SPY:trades")],
            "5s": [tuple(b[k] for k in ohlcv) for b in _list(r, f"{kp}market:SPY:bars:5s")],
            "1m": [{k: b[k] for k in ohlcv} for b in _list(r, f"{kp}market:SPY:bars:1min")],
        }

    want = {"books": {ex: (b[:10], a[:10]) for ex, (b, a) in books.items()}, "trades": want_trades,
            "5s": want_5s, "1m": want_1m}  # fmt: skip
    try:
        wait_for(lambda: state() == want, 15, what="Redis equal to the simulator's session")
    except AssertionError:
        got = state()
        for k in want:
            assert got[k] == want[k], k
        raise

    # NBBO ticker: best prices over the exchanges' books, sizes of the exchanges at the best summed.
    tops = {ex: (b[0] if b else None, a[0] if a else None) for ex, (b, a) in books.items()}
    bid = max(t[0][0] for t in tops.values() if t[0])
    ask = min(t[1][0] for t in tops.values() if t[1])
    bid_size = sum(t[0][1] for t in tops.values() if t[0] and t[0][0] == bid)
    ask_size = sum(t[1][1] for t in tops.values() if t[1] and t[1][0] == ask)
    last = max(enumerate(trades), key=lambda it: (int(it[1][3]), it[0]))[1]
    tk = _json(r, f"{kp}market:SPY:ticker")
    assert (tk["bid"], tk["ask"], tk["bid_size"], tk["ask_size"], tk["last"]) == (
        bid,
        ask,
        bid_size,
        ask_size,
        D(last[4]),
    )
    if bid < ask:
        assert tk["mid"] == (bid + ask) / 2 and tk["spread"] == ask - bid
        assert tk["spread_bps"] == ((ask - bid) * 20000 / (bid + ask)).quantize(tk["spread_bps"])
    assert r.ttl(f"{kp}market:SPY:ticker") > 0 and r.ttl(f"{kp}market:SPY:ARCA:book") > 0

    # Status keys from the producer's heartbeats.
    beat = _json(r, f"{kp}heartbeat:ibkr_ingestion")
    metrics = _json(r, f"{kp}monitoring:ibkr:metrics")
    assert beat["component"] == "ingest.ibkr" and metrics["stream"] == f"tws.{CLIENT}"
    assert 0 < r.ttl(f"{kp}ibkr:connected") <= 30
    assert time.monotonic() - t_start < 60
