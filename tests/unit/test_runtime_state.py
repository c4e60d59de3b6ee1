"""tickwire.runtime's PartitionState: a transactional overlay over the committed state."""

from __future__ import annotations

import pytest

from tickwire.runtime import PartitionState, StreamConfig


def test_dirty_writes_are_visible_then_merged_on_commit() -> None:
    st = PartitionState({b"a": b"1", b"b": b"2"})
    st.put(b"a", b"10")
    st.delete(b"b")
    st.put(b"c", b"3")
    assert (st.get(b"a"), st.get(b"b"), st.get(b"c")) == (b"10", None, b"3")
    assert sorted(st.items()) == [(b"a", b"10"), (b"c", b"3")]
    assert st.dirty() == {b"a": b"10", b"b": None, b"c": b"3"}  # what the changelog gets (None = tombstone)
    st.merge()
    assert st.dirty() == {} and st.committed_snapshot() == {b"a": b"10", b"c": b"3"}


def test_abort_discards_every_write_since_the_last_commit() -> None:
    st = PartitionState({b"a": b"1"})
    st.put(b"a", b"2")
    st.delete(b"a")
    st.put(b"x|1", b"y")
    st.discard()
    assert st.get(b"a") == b"1" and st.get(b"x|1") is None and st.items(b"x|") == []


def test_items_by_prefix_apply_dirty_writes() -> None:
    st = PartitionState({b"b|s|BTC": b"1", b"b|s|ETH": b"2", b"w|s": b"3"})
    st.delete(b"b|s|ETH")
    st.put(b"b|s|SOL", b"4")
    assert sorted(st.items(b"b|s|")) == [(b"b|s|BTC", b"1"), (b"b|s|SOL", b"4")]


def test_stateless_worker_state_fails_loudly() -> None:
    with pytest.raises(RuntimeError):
        PartitionState.detached().get(b"k")


def test_config_rejects_unknown_keys_and_unsafe_combinations() -> None:
    base = {"bootstrap_servers": "b:9092", "group_id": "g", "topics": ("t",)}
    with pytest.raises(ValueError):
        StreamConfig(**base, comit_interval_ms=5)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        StreamConfig(**base, isolation_level="read_uncommitted")  # exactly-once reads committed only
    with pytest.raises(ValueError):
        StreamConfig(**base, linger_ms=5)  # the live path wants linger.ms <= 1
    with pytest.raises(ValueError):
        StreamConfig(**base, static_membership=True)  # needs a stable instance id
    c = StreamConfig(**base, instance_id="0", static_membership=True)
    assert c.transactional_id() == "g-0" and c.consumer_conf()["group.instance.id"] == "g-0"
    assert c.consumer_conf()["partition.assignment.strategy"] == "cooperative-sticky"
    assert c.producer_conf("g-0")["message.timeout.ms"] <= c.producer_conf("g-0")["transaction.timeout.ms"]


def test_batch_for_bounds_outputs_per_transaction() -> None:
    from tickwire.runtime.config import batch_for

    assert batch_for(1.0, 1000, 100_000) == 1000  # one output per input: the configured batch
    assert batch_for(0.0, 1000, 100_000) == 1000  # control frames only
    assert batch_for(1000.0, 1000, 100_000) == 100  # DBN messages of 1000 records: 100k outputs a batch
    assert batch_for(250_000.0, 1000, 100_000) == 1  # never below one record
