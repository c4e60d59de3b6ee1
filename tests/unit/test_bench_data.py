"""Benchmark inputs: envelope seqs are unique and gap-free per stream; the mixed backlog has every vendor."""

from __future__ import annotations

from collections import Counter

import databento_dbn as dbn

from tickwire.bench import data
from tickwire.contract.envelope import Envelope


def test_sequencer_gap_free_per_stream() -> None:
    seq = data.Sequencer(session=42)
    a = data.RawEvent("binance", "spot", b"K", b"{}", "json")
    b = data.RawEvent("coinbase", "feed", b"K", b"{}", "json")
    envs = [Envelope.from_headers(seq.headers(e, ts_recv=7)) for e in (a, b, a, a, b)]
    assert [(e.source, e.seq) for e in envs] == [
        ("binance", 1), ("coinbase", 1), ("binance", 2), ("binance", 3), ("coinbase", 2),
    ]  # fmt: skip
    assert {e.session for e in envs} == {42} and {e.ts_recv for e in envs} == {7}


def test_mixed_backlog_covers_vendors_and_size() -> None:
    events = data.mixed_backlog(2_000)
    assert data.total_events(events) >= 2_000
    assert set(Counter(e.source for e in events)) == {"alpaca", "binance", "coinbase", "databento"}
    per_vendor = Counter()
    for e in events:
        per_vendor[e.source] += e.events
    assert per_vendor["databento"] == 400 and per_vendor["alpaca"] == 400  # 20% each by default


def test_dbn_events_decode_alone() -> None:
    (ev,) = data.dbn_events(50, 100)
    assert ev.events == 50 and ev.content_type == "dbn"
    dec = dbn.DBNDecoder()
    dec.write(ev.value)
    recs = dec.decode()
    assert isinstance(recs[0], dbn.Metadata)
    assert len(recs) == 51


def test_mixed_backlog_is_valid_input_for_the_normalizer() -> None:
    # The backlog measures the canonical path: none of it may go to the DLQ (recorded frames stamped with
    # the current time once did: their event times fell outside the event-time window).
    from tickwire.bench import s_core

    msgs = s_core.messages(data.mixed_backlog(20_000))
    pipe = s_core._pipeline()
    statuses = Counter(pipe.process(m).status for m in msgs)
    assert statuses["dlq"] == 0 and statuses["ok"] > 0
    envs = [Envelope.from_headers(m.headers) for m in msgs if m.topic in ("binance.raw", "coinbase.raw")]
    recorded = [e for e in envs if not e.stream.startswith("rest.")]  # WebSocket frames of 2021 sessions
    assert recorded and all(e.ts_recv < 1_700_000_000 * 10**9 for e in recorded)


def test_cycled_recording_continues_the_feed_instead_of_repeating_it() -> None:
    # A verbatim second pass of the Binance recording is all stale diffs (control frames, no record): the
    # backlog would measure the discard path for two thirds of the Binance share.
    from tickwire.bench import s_core

    base = data.recorded_events("binance", "spot")
    events = data.cycled("binance", base, 3 * len(base))
    assert events[: len(base)] == base  # the first pass is the recording itself
    msgs = [m for m in s_core.messages(events) if b"@depth" in (m.value or b"")]
    pipe = s_core._pipeline()
    statuses = Counter(pipe.process(m).status for m in msgs)
    assert statuses == {"ok": len(msgs)}
    second = events[len(base) : 2 * len(base)]
    changed = [(a, b) for a, b in zip(base, second, strict=True) if a.value != b.value]
    assert changed and all(b"@depth" in a.value for a, _ in changed)
    assert [e for e in data.cycled("coinbase", base[:3], 7)] == [base[i % 3] for i in range(7)]
