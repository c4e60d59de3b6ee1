"""Aggregated NBBO across per-venue books: best prices, summed sizes, venues, locked/crossed flags,
emit-on-change, monotonic time, resets, and through the pipeline with the TWS parser."""

from __future__ import annotations

import random
from typing import Any

from tickwire.contract import routing
from tickwire.contract.codec import Codec
from tickwire.contract.envelope import Envelope, context_header
from tickwire.contract.records import BookUpdate, Level, Quote
from tickwire.normalize import nbbo
from tickwire.normalize.derive import Derived
from tickwire.normalize.pipeline import Pipeline, RawMessage
from tickwire.normalize.state import MemoryStore
from tickwire.normalize.validate import CROSSED
from tickwire.vendors.ibkr.parser import PARSER

E9 = 10**9
T0 = 1_765_000_000 * E9
CODEC = Codec()


def book(
    venue: str,
    bids: list[tuple[int, int]],
    asks: list[tuple[int, int]],
    ts: int = T0,
    seq: int = 1,
    recv: int | None = None,
) -> BookUpdate:
    return BookUpdate(
        symbol="SPY", asset_class="equity", source="ibkr", venue=venue, stream="tws.1", session=1, seq=seq,
        ts_event=ts, ts_recv=ts if recv is None else recv, bids=tuple(Level(p, s) for p, s in bids),
        asks=tuple(Level(p, s) for p, s in asks), snapshot=True,
    )  # fmt: skip


def test_best_prices_sizes_summed_and_venues_at_the_best() -> None:
    st = nbbo.SymbolNbbo()
    nbbo.on_book(st, book("ARCA", [(100, 3), (99, 50)], [(102, 4)]))
    nbbo.on_book(st, book("NSDQ", [(100, 2)], [(101, 1), (103, 9)]))
    q = nbbo.on_book(st, book("BATS", [(98, 7)], [(101, 6)]))
    assert isinstance(q, Quote) and q.venue == "NBBO"
    assert (q.bid_price, q.bid_size, q.bid_venue) == (100, 5, "ARCA,NSDQ")
    assert (q.ask_price, q.ask_size, q.ask_venue) == (101, 7, "BATS,NSDQ")
    assert q.conditions == ()


def test_emitted_only_when_it_changes_and_time_is_monotonic() -> None:
    st = nbbo.SymbolNbbo()
    assert nbbo.on_book(st, book("ARCA", [(100, 3)], [(102, 4)], ts=T0 + 10)) is not None
    # A deeper level changes: the NBBO does not, nothing is published.
    assert nbbo.on_book(st, book("ARCA", [(100, 3), (90, 1)], [(102, 4)], ts=T0 + 11)) is None
    q = nbbo.on_book(st, book("NSDQ", [(101, 1)], [], ts=T0 + 5, recv=T0 + 12))  # older-stamped, later
    assert q is not None and q.bid_price == 101 and q.ts_event == T0 + 10  # never back in time
    # A receive clock that restarts (a replay from an earlier time) is followed, never stamped ahead of it.
    q = nbbo.on_book(st, book("BATS", [(101, 5)], [], ts=T0 - 100))
    assert q is not None and q.ts_event == T0 - 100


def test_locked_and_crossed() -> None:
    st = nbbo.SymbolNbbo()
    nbbo.on_book(st, book("ARCA", [(100, 3)], [(102, 4)]))
    q = nbbo.on_book(st, book("NSDQ", [(102, 1)], [(103, 1)]))
    assert q is not None and q.conditions == (nbbo.LOCKED,)
    pipe = _pipeline()
    crossed = _through_pipeline(
        pipe, [("ARCA", 0, 1, "10.00"), ("ARCA", 0, 0, "10.05"), ("NSDQ", 0, 1, "10.10")]
    )
    assert CROSSED in crossed[-1].conditions and crossed[-1].bid_price > crossed[-1].ask_price


def test_venue_emptied_and_reset() -> None:
    st = nbbo.SymbolNbbo()
    nbbo.on_book(st, book("ARCA", [(100, 3)], [(102, 4)]))
    q = nbbo.on_book(st, book("NSDQ", [(101, 1)], [(102, 1)]))
    assert q is not None and q.bid_venue == "NSDQ" and q.ask_size == 5
    q = nbbo.on_book(st, book("NSDQ", [], []))
    assert q is not None and (q.bid_price, q.ask_size) == (100, 4) and "NSDQ" not in st.tops
    nbbo.reset(st)
    assert st.tops == {} and nbbo.on_book(st, book("ARCA", [], [])) is None


def reference(books: dict[str, tuple[list[tuple[int, int]], list[tuple[int, int]]]]) -> tuple[Any, ...]:
    """Independent: the best prices over every venue's levels; sizes of every venue's top at that price."""
    tops = {}
    for v, (bids, asks) in books.items():
        b = max(bids, default=None)
        a = min(asks, default=None)
        tops[v] = (b, a)
    bid = max((t[0][0] for t in tops.values() if t[0]), default=0)
    ask = min((t[1][0] for t in tops.values() if t[1]), default=0)
    bv = sorted(v for v, t in tops.items() if t[0] and t[0][0] == bid)
    av = sorted(v for v, t in tops.items() if t[1] and t[1][0] == ask)
    return (
        bid,
        sum(tops[v][0][1] for v in bv),
        ask,
        sum(tops[v][1][1] for v in av),
        ",".join(bv) or None,
        ",".join(av) or None,
    )  # type: ignore[index]


def test_random_books_match_reference_and_emit_exactly_on_change() -> None:
    rng = random.Random(11)
    st = nbbo.SymbolNbbo()
    books: dict[str, Any] = {}
    last = None
    for i in range(500):
        v = rng.choice(["ARCA", "NSDQ", "BATS", "IEX"])
        bids = [(rng.randrange(95, 101), rng.randrange(1, 9)) for _ in range(rng.randrange(0, 4))]
        asks = [(rng.randrange(100, 106), rng.randrange(1, 9)) for _ in range(rng.randrange(0, 4))]
        bids = list({p: s for p, s in bids}.items())  # one level per price, as a book has
        asks = list({p: s for p, s in asks}.items())
        books[v] = (bids, asks)
        q = nbbo.on_book(st, book(v, bids, asks, ts=T0 + i))
        want = reference(books)
        empty = want[0] == 0 and want[2] == 0
        if empty or want == last:
            assert q is None
        else:
            assert q is not None
            assert (q.bid_price, q.bid_size, q.ask_price, q.ask_size, q.bid_venue, q.ask_venue) == want
        last = None if empty else want


def _pipeline() -> Pipeline:
    return Pipeline(
        get_parser=lambda _s: PARSER,
        encode=CODEC.encode,
        topic_for=routing.topic_for,
        key_for=routing.key_for,
        derived=Derived(nbbo_sources=frozenset({"ibkr"})),
    )


def _raw(seq: int, payload: bytes, exchange: str, kind: str = "depth", symbol: str = "SPY") -> RawMessage:
    ctx = {"server_version": 176, "req_id": 3, "symbol": symbol, "exchange": exchange, "kind": kind}
    env = Envelope("ibkr", "tws.1", 1, seq, T0 + seq, "tws", context=context_header(ctx)[1].decode())
    return RawMessage("ibkr.raw", 0, seq, symbol.encode(), payload, env.to_headers())


_SEQ = [0]


def _through_pipeline(pipe: Pipeline, inserts: list[tuple[str, int, int, str]]) -> list[Quote]:
    store = MemoryStore()
    quotes = []
    for ex, pos, side, price in inserts:
        _SEQ[0] += 1
        payload = b"".join(str(f).encode() + b"\0" for f in (13, 1, 3, pos, ex, 0, side, price, "100", 1))
        res = pipe.process(_raw(_SEQ[0], payload, ex), store)
        assert res.status == "ok", res
        got = [CODEC.decode(o.value) for o in res.outputs if o.topic == "stock_quotes_realtime"]
        assert res.crossed == sum(CROSSED in q.conditions for q in got)  # derived quotes counted too
        quotes += got
    return quotes


def test_pipeline_resync_drops_the_symbols_venue_tops() -> None:
    pipe = _pipeline()
    store = MemoryStore()
    frames = [
        ("ARCA", (13, 1, 3, 0, "ARCA", 0, 1, "10.00", "100", 1)),
        ("NSDQ", (13, 1, 3, 0, "NSDQ", 0, 1, "10.01", "200", 1)),
        ("NSDQ", (13, 1, 3, 0, "NSDQ", 0, 0, "10.03", "300", 1)),
    ]
    quotes = []
    for i, (ex, f) in enumerate(frames):
        res = pipe.process(_raw(i + 1, b"".join(str(x).encode() + b"\0" for x in f), ex), store)
        quotes += [CODEC.decode(o.value) for o in res.outputs if o.topic == "stock_quotes_realtime"]
    assert [(q.bid_price, q.bid_venue, q.ask_price) for q in quotes] == [
        (10 * E9, "ARCA", 0),
        (10_010_000_000, "NSDQ", 0),
        (10_010_000_000, "NSDQ", 10_030_000_000),
    ]
    res = pipe.process(_raw(4, b"4\x002\x00-1\x001101\x00lost\x00\x00", "", "system", ""), store)
    assert res.status == "control" and res.resync == ["SPY"]
    pipe.forget_partition("ibkr.raw", 0)
    assert nbbo.key("ibkr", "SPY") in store.data
    # After the reset only the re-sent ARCA book counts (NSDQ's old top is gone).
    res = pipe.process(_raw(5, b"".join(str(x).encode() + b"\0" for x in frames[0][1]), "ARCA"), store)
    (q,) = [CODEC.decode(o.value) for o in res.outputs if o.topic == "stock_quotes_realtime"]
    assert (q.bid_price, q.bid_venue, q.ask_price, q.ts_event) == (10 * E9, "ARCA", 0, T0 + 5)


def test_restart_from_the_store_continues_books_and_nbbo() -> None:
    """Parser books (checkpointed) and NBBO state (store) survive a new pipeline on the same store."""
    frames = [
        ("ARCA", (13, 1, 3, 0, "ARCA", 0, 1, "10.00", "100", 1)),
        ("NSDQ", (13, 1, 3, 0, "NSDQ", 0, 1, "10.00", "200", 1)),
        ("ARCA", (13, 1, 3, 1, "ARCA", 0, 1, "9.99", "50", 1)),
        ("NSDQ", (13, 1, 3, 0, "NSDQ", 0, 0, "10.02", "300", 1)),
    ]
    store = MemoryStore()

    def run(pipe: Pipeline, seqs: range) -> list[Any]:
        out = []
        for i in seqs:
            ex, f = frames[i]
            res = pipe.process(_raw(i + 1, b"".join(str(x).encode() + b"\0" for x in f), ex), store)
            out += [CODEC.decode(o.value) for o in res.outputs]
        return out

    first = _pipeline()
    run(first, range(3))
    first.checkpoint("ibkr.raw", 0, store)
    (book, quote) = run(_pipeline(), range(3, 4))
    assert isinstance(book, BookUpdate) and [lv.price for lv in book.bids] == [10 * E9]
    assert isinstance(quote, Quote)
    assert (quote.bid_price, quote.bid_size, quote.bid_venue) == (10 * E9, 300 * E9, "ARCA,NSDQ")
    assert (quote.ask_price, quote.ask_size, quote.ask_venue) == (10_020_000_000, 300 * E9, "NSDQ")
