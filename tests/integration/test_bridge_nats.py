"""NATS bridge against real Kafka + JetStream: subjects, Nats-Msg-Id, payloads, restart dedupe, outage."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import StorageType

from tests.helpers import unique_name, wait_for
from tests.integration.test_bridge_helpers import (
    SESSION,
    T0,
    Proc,
    bar,
    book,
    bridge_proc,
    create_topics,
    private_nats,
    procs,
    produce,
    quote,
    trade,
)
from tickwire.bench.s_bridges import delete_nats_stream
from tickwire.bridges import shapes
from tickwire.contract.exact import parse_units as u
from tickwire.contract.records import BookUpdate, Level
from tickwire.infra.process import free_port

__all__ = ["procs"]

pytestmark = pytest.mark.integration

TOPICS = [
    "stock_trades_realtime",
    "option_trades_realtime",
    "future_trades_realtime",
    "crypto_trades_realtime",
    "stock_quotes_realtime",
    "crypto_quotes_realtime",
    "stock_bars_staging",
    "future_book_realtime",
    "crypto_book_realtime",
]


def _setup(kafka: str) -> str:
    prefix = unique_name("nb") + "."
    create_topics(kafka, [prefix + t for t in TOPICS] + [prefix + "bridge.nats.dlq"])
    return prefix


def _bridge(kafka: str, nats_url: str, prefix: str, tmp: Path, *extra: str) -> tuple[Proc, str, str]:
    stream = unique_name("MD").replace("-", "_")
    subj = stream.lower() + "."
    args = [
        "--bootstrap",
        kafka,
        "--nats-url",
        nats_url,
        "--topic-prefix",
        prefix,
        "--topics",
        ",".join(TOPICS),
    ]
    args += ["--stream", stream, "--subject-prefix", subj, *extra]
    return bridge_proc("nats", args, tmp / f"bridge-{stream}.log"), stream, subj


async def _read_stream(url: str, stream: str) -> list[Any]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        msgs = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msgs.append(await js.get_msg(stream, seq))
        return msgs
    finally:
        await nc.close()


async def _count(url: str, stream: str) -> int:
    nc = await nats.connect(url, connect_timeout=1, max_reconnect_attempts=0)
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    finally:
        await nc.close()


def count(url: str, stream: str) -> int:
    try:
        return asyncio.run(_count(url, stream))
    except Exception:
        return -1


def _metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def mbp10(i: int) -> BookUpdate:
    return BookUpdate(
        symbol="ESH4",
        asset_class="future",
        source="databento",
        stream="replay.glbx-mdp3",
        session=SESSION,
        seq=40_000 + i,
        ts_event=T0 + i,
        ts_recv=T0 + i + 10,
        snapshot=True,
        depth=10,
        bids=tuple(Level(u("4700") - k * u("0.25"), u("5") + k) for k in range(10)),
        asks=tuple(Level(u("4700.25") + k * u("0.25"), u("6") + k) for k in range(10)),
    )


def test_subjects_headers_and_payloads(
    kafka_bootstrap: str, nats_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    prefix = _setup(kafka_bootstrap)
    records: list[Any] = [
        trade(0),
        trade(1, symbol="O:SPY251216C00676000", asset="option", stream="options"),
        trade(2, symbol="ESH4", asset="future", stream="replay.glbx-mdp3", source="databento"),
        trade(3, symbol="BTC/USD", asset="crypto", stream="crypto"),
        quote(0),
        quote(1, symbol="BTC/USD", asset="crypto"),
        bar(0),
        mbp10(0),
        book(0, False, [("100", "1")], []),
    ]
    expected_subjects = [
        "market.stocks.trades",
        "market.options.trades",
        "market.futures.trades",
        "market.crypto.trades",
        "market.stocks.quotes",
        "market.crypto.quotes",
        "market.stocks.bars",
        "market.futures.mbp10",
        "market.crypto.book",
    ]
    produce(kafka_bootstrap, prefix, records, raw=[("stock_trades_realtime", b"\x00\x00\x00\x00\x07corrupt")])
    bridge, stream, subj = _bridge(kafka_bootstrap, nats_url, prefix, tmp_path)
    procs.append(bridge.start())
    try:
        wait_for(lambda: count(nats_url, stream) == len(records), 60, what="all records in JetStream")
        msgs = asyncio.run(_read_stream(nats_url, stream))
        by_id = {m.headers["Nats-Msg-Id"]: m for m in msgs}
        assert len(by_id) == len(records)
        for rec, subject in zip(records, expected_subjects, strict=True):
            m = by_id[shapes.msg_id(rec)]
            assert m.subject == subj + subject
            payload = json.loads(m.data)
            assert payload["schema"] == type(rec).__name__
            assert payload["seq"] == rec.seq and payload["ts_event"] == rec.ts_event
            assert payload["event_source"] == ("replay" if rec.stream.startswith("replay") else rec.source)
        t0 = json.loads(by_id[shapes.msg_id(records[0])].data)
        assert t0["price"] == "100" and t0["size"] == "10" and t0["symbol"] == "AAPL"
        es = json.loads(by_id[shapes.msg_id(records[7])].data)
        assert es["bids"][0] == {"price": "4700", "size": "5", "count": None} and len(es["asks"]) == 10

        async def config() -> Any:
            nc = await nats.connect(nats_url)
            try:
                return (await nc.jetstream().stream_info(stream)).config
            finally:
                await nc.close()

        cfg = asyncio.run(config())
        assert cfg.subjects == [subj + "market.>"]
        assert cfg.max_age == 24 * 3600 and cfg.storage == StorageType.FILE
        assert cfg.duplicate_window == 20 * 60
    finally:
        bridge.stop()
        delete_nats_stream(nats_url, stream)


def test_restart_midstream_publishes_each_record_once(
    kafka_bootstrap: str, nats_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    prefix = _setup(kafka_bootstrap)
    produce(kafka_bootstrap, prefix, [trade(i) for i in range(5000)])
    bridge, stream, _ = _bridge(kafka_bootstrap, nats_url, prefix, tmp_path, "--batch-max", "20")
    procs.append(bridge.start())
    try:
        wait_for(lambda: count(nats_url, stream) >= 300, 60, interval=0.02, what="progress")
        bridge.stop(signal.SIGKILL)  # uncommitted, already-published batches are redelivered
        produce(kafka_bootstrap, prefix, [trade(i) for i in range(5000, 6000)])
        port = free_port()
        again = Proc([*bridge.argv, "--metrics-port", str(port)], bridge.log, bridge.env).start()
        procs.append(again)
        wait_for(lambda: count(nats_url, stream) >= 6000, 120, what="all published")
        wait_for(lambda: _metric(port, "tickwire_bridge_records_in_total") > 0, 30, what="restart consumed")
        time.sleep(2)  # a duplicate published late would show up here
        msgs = asyncio.run(_read_stream(nats_url, stream))
        ids = [m.headers["Nats-Msg-Id"] for m in msgs]
        assert len(ids) == 6000 and len(set(ids)) == 6000
        assert set(ids) == {shapes.msg_id(trade(i)) for i in range(6000)}
        print(
            "duplicates dropped by JetStream after restart:",
            _metric(port, "tickwire_bridge_duplicates_total"),
        )
    finally:
        delete_nats_stream(nats_url, stream)


def test_nats_outage_loses_nothing(kafka_bootstrap: str, tmp_path: Path, procs: list[Proc]) -> None:
    prefix = _setup(kafka_bootstrap)
    nport, mport = free_port(), free_port()
    store = tmp_path / "js"
    server = private_nats(nport, store, tmp_path / "nats.log")
    procs.append(server)
    url = f"nats://127.0.0.1:{nport}"
    produce(kafka_bootstrap, prefix, [trade(i) for i in range(100)])
    bridge, stream, _ = _bridge(kafka_bootstrap, url, prefix, tmp_path, "--metrics-port", str(mport))
    procs.append(bridge.start())
    wait_for(lambda: count(url, stream) == 100, 60, what="first half")

    server.stop(signal.SIGTERM)
    produce(kafka_bootstrap, prefix, [trade(i) for i in range(100, 200)])
    wait_for(lambda: _metric(mport, "tickwire_bridge_errors_total") >= 1, 60, what="errors reported")
    time.sleep(8)
    assert bridge.alive()
    assert _metric(mport, "tickwire_bridge_retrying") == 1
    assert _metric(mport, "tickwire_bridge_lag_seconds") > 5

    procs.append(Proc(server.argv, server.log).start())
    wait_for(lambda: count(url, stream) == 200, 90, interval=0.3, what="second half after outage")
    msgs = asyncio.run(_read_stream(url, stream))
    assert sorted(m.headers["Nats-Msg-Id"] for m in msgs) == sorted(
        shapes.msg_id(trade(i)) for i in range(200)
    )
