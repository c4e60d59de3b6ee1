"""LP (QuickFIX/J) -> ``tickwire ingest fix`` -> fix.raw -> ``tickwire normalize`` -> fx canonical topics.

The expectation is computed from the messages the engine itself stored as sent (its MessageStore), with an
oracle independent of the parser: every canonical quote, book update and trade must equal an LP price and
size by its decimal text and carry the entry's 272/273 time.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.helpers import unique_name, wait_for
from tests.integration.test_fix_session import Producer, field, logged_out
from tickwire.contract.codec import Codec
from tickwire.contract.exact import parse_units
from tickwire.contract.records import BookUpdate, Quote, Trade
from tickwire.vendors.fix.lp import LpProcess

pytestmark = pytest.mark.integration


def entry_ns(date: str, clock: str) -> int:
    whole, _, frac = clock.partition(".")
    day = dt.datetime.strptime(date + whole, "%Y%m%d%H:%M:%S").replace(tzinfo=dt.UTC)
    return int(day.timestamp()) * 10**9 + int(frac.ljust(9, "0"))


def groups(raw: bytes, delimiter: bytes) -> list[dict[bytes, str]]:
    out: list[dict[bytes, str]] = []
    started = False
    for f in raw.split(b"\x01"):
        tag, _, value = f.partition(b"=")
        if tag == b"268":
            started = True
        elif started and tag == delimiter:
            out.append({})
        if started and out and tag not in (b"10",):
            out[-1].setdefault(tag, value.decode())
    return out


def expected(sent: list[bytes]) -> Counter[tuple[Any, ...]]:
    """What the normalizer must publish for these W/X messages, from their text alone."""
    want: Counter[tuple[Any, ...]] = Counter()
    for raw in sent:
        kind = field(raw, 35)
        if kind == "W":
            sym = field(raw, 55)
            es = groups(raw, b"269")
            ts = max(entry_ns(e[b"272"], e[b"273"]) for e in es)
            bids = sorted((parse_units(e[b"270"]), parse_units(e[b"271"])) for e in es if e[b"269"] == "0")
            asks = sorted((parse_units(e[b"270"]), parse_units(e[b"271"])) for e in es if e[b"269"] == "1")
            want[("Quote", sym, *bids[-1], *asks[0], ts)] += 1
            want[("Book", sym, True, tuple(reversed(bids)), tuple(asks), ts)] += 1
        elif kind == "X":
            for e in groups(raw, b"279"):
                ts = entry_ns(e[b"272"], e[b"273"])
                px = parse_units(e[b"270"])
                size = 0 if e[b"279"] == "2" else parse_units(e[b"271"])
                if e[b"269"] == "2":
                    want[("Trade", e[b"55"], px, size, ts, e[b"278"])] += 1
                else:
                    lv = ((px, size),)
                    sides = (lv, ()) if e[b"269"] == "0" else ((), lv)
                    want[("Book", e[b"55"], False, *sides, ts)] += 1
    return want


def canonical(rec: Any) -> tuple[Any, ...]:
    if isinstance(rec, Quote):
        return ("Quote", rec.symbol, rec.bid_price, rec.bid_size, rec.ask_price, rec.ask_size, rec.ts_event)
    if isinstance(rec, Trade):
        return ("Trade", rec.symbol, rec.price, rec.size, rec.ts_event, rec.trade_id)
    assert isinstance(rec, BookUpdate)
    levels = (tuple((lv.price, lv.size) for lv in rec.bids), tuple((lv.price, lv.size) for lv in rec.asks))
    return ("Book", rec.symbol, rec.snapshot, *levels, rec.ts_event)


def read_until(bootstrap: str, topics: list[str], n: int, timeout: float) -> list[Any]:
    codec = Codec()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_name("fx"), "enable.auto.commit": False,
                  "isolation.level": "read_committed", "auto.offset.reset": "earliest"})  # fmt: skip
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            md = c.list_topics(timeout=10).topics
            if not c.assignment() and all(t in md for t in topics):
                c.assign([TopicPartition(t, p, 0) for t in topics for p in md[t].partitions])
            for m in c.consume(500, timeout=0.2) if c.assignment() else []:
                if not m.error():
                    out.append(codec.decode(m.value()))
            if not c.assignment():
                time.sleep(0.2)
        return out
    finally:
        c.close()


def test_canonical_fx_quotes_book_and_trades_equal_what_the_lp_sent(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with LpProcess(targets=["E2E"], rate=20, log_file=tmp_path / "lp.log") as lp:
        p = Producer(kafka_bootstrap, lp, "E2E", tmp_path, entry_types=("0", "1", "2"))
        wait_for(lambda: p.published() >= 40, 20, what="W and X")
        p.stop()
        st = logged_out(lp, "E2E")
        stored = lp.sent("E2E", 1, st["next_out"] - 1)
    # What the engine stores after its Logout (ticks racing the logout) never went on the wire.
    sent = stored[: next(i for i, m in enumerate(stored) if field(m, 35) == "5") + 1]
    want = expected(sent)
    assert sum(1 for k in want if k[0] == "Trade") >= 1 and sum(1 for k in want if k[0] == "Quote") == 3
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    argv = [sys.executable, "-m", "tickwire.cli", "normalize", "--topic-prefix", p.prefix, "--vendors", "fix",
            "--create-topics", "--metrics-port", "0"]  # fmt: skip
    with (tmp_path / "normalizer.log").open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        topics = [p.prefix + t for t in ("fx_quotes_realtime", "fx_book_realtime", "fx_trades_realtime")]
        got = read_until(kafka_bootstrap, topics, sum(want.values()), 60)
    finally:
        proc.terminate()
        proc.wait(30)
    assert Counter(canonical(r) for r in got) == want, (tmp_path / "normalizer.log").read_text()[-2000:]
    assert {r.asset_class for r in got} == {"fx"} and {r.venue for r in got} == {"LP_ALPHA"}
    assert {r.symbol for r in got} == {"EUR/USD", "GBP/USD", "USD/JPY"}
