"""The normalizer's per-partition state: parser-state snapshots make rollbacks and restarts exact."""

from __future__ import annotations

from pathlib import Path

from tickwire import vendors as registry
from tickwire.contract import routing
from tickwire.contract.codec import Codec
from tickwire.normalize.pipeline import Pipeline, RawMessage
from tickwire.normalize.state import MemoryStore, dump_parser_state, load_parser_state
from tickwire.runtime import PartitionState

RECORDED = Path("/work/shared/data/recorded/cryptofeed-BINANCE.ws.1.0")


def _pipeline() -> Pipeline:
    return Pipeline(
        get_parser=registry.get_parser,
        encode=Codec().encode,
        topic_for=routing.topic_for,
        key_for=routing.key_for,
        bar_sources=frozenset({"binance"}),
        bar_lateness_ns=2_000_000_000,
    )


def _raw() -> list[RawMessage]:
    from tests.integration.test_normalize_kafka import raw_messages

    return [
        RawMessage("binance.raw", 0, i, k, v, h)
        for i, (_, k, v, h) in enumerate(raw_messages(""))
        if i < 1500
    ]


def test_every_vendor_parser_state_survives_a_snapshot() -> None:
    for name in registry.names():
        parser = registry.get_parser(name)
        state = parser.new_state(None)
        again = load_parser_state(dump_parser_state(state), name)
        assert type(again) is type(state), name


def test_unreadable_snapshot_gives_a_fresh_state() -> None:
    assert load_parser_state(b"not a pickle", "binance") is None


def test_rollback_to_a_checkpoint_replays_identically() -> None:
    # The worker's cycle: process, checkpoint + merge (commit) ... then process more, abort (discard +
    # forget), and process the same records again: outputs must equal an uninterrupted run's.
    msgs = _raw()
    straight = _pipeline()
    want = [o for m in msgs for o in straight.process(m).outputs]
    p, st = _pipeline(), PartitionState()
    got = [o for m in msgs[:700] for o in p.process(m, st).outputs]
    p.checkpoint("binance.raw", 0, st)
    st.merge()
    _ = [p.process(m, st) for m in msgs[700:1100]]  # this cycle is aborted
    st.discard()
    p.forget_partition("binance.raw", 0)
    got += [o for m in msgs[700:] for o in p.process(m, st).outputs]
    assert got == want and len(want) > 1000


def test_restart_from_the_store_continues_identically() -> None:
    msgs = _raw()
    straight = _pipeline()
    want = [o for m in msgs for o in straight.process(m).outputs]
    store = MemoryStore()
    first = _pipeline()
    got = [o for m in msgs[:800] for o in first.process(m, store).outputs]
    first.checkpoint("binance.raw", 0, store)
    second = _pipeline()  # a new process over the same store
    got += [o for m in msgs[800:] for o in second.process(m, store).outputs]
    assert got == want
