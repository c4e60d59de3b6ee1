"""Per-input-partition key/value state with a transactional overlay, backed by compacted changelogs.

``PartitionState`` keeps two layers: ``committed`` (what the changelog holds as of the last commit) and
``dirty`` (writes since; ``None`` marks a delete). Reads see dirty first, so the processor sees its own
writes at once; a commit writes the dirty keys to the changelog inside the transaction and merges them;
an abort discards them, which *is* the rollback to the last committed state. The changelog partition is
the input partition, so a key needs no partition prefix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from tickwire.logs import kv

log = logging.getLogger(__name__)

_MISSING: Any = object()


def changelog_topic(app_id: str, input_topic: str) -> str:
    return f"{app_id}-{input_topic}-changelog"


class PartitionState:
    __slots__ = ("_committed", "_dirty", "_live")

    def __init__(self, committed: dict[bytes, bytes] | None = None) -> None:
        self._committed: dict[bytes, bytes] = committed if committed is not None else {}
        self._dirty: dict[bytes, bytes | None] = {}
        self._live = True

    @classmethod
    def detached(cls) -> PartitionState:
        """Placeholder for stateless workers: any use is a bug, so it fails loudly."""
        st = cls()
        st._live = False
        return st

    def _check(self) -> None:
        if not self._live:
            raise RuntimeError("no state: the worker is not stateful (StreamConfig.stateful=False)")

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        v = self._dirty.get(key, _MISSING)
        if v is _MISSING:
            if not self._live:
                self._check()
            return self._committed.get(key, default)
        return default if v is None else v

    def put(self, key: bytes, value: bytes) -> None:
        if not self._live:
            self._check()
        self._dirty[key] = value

    def delete(self, key: bytes) -> None:
        if not self._live:
            self._check()
        self._dirty[key] = None

    def __contains__(self, key: bytes) -> bool:
        return self.get(key) is not None

    def items(self, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        """Every live (key, value) whose key starts with ``prefix``, dirty writes applied; a list (a
        snapshot), so the caller may write while walking it."""
        self._check()
        d = self._dirty
        out = [(k, v) for k, v in self._committed.items() if k.startswith(prefix) and k not in d]
        out += [(k, v) for k, v in d.items() if v is not None and k.startswith(prefix)]
        return out

    def __len__(self) -> int:
        return len(self.items())

    # -- used by the worker --

    def dirty(self) -> dict[bytes, bytes | None]:
        return self._dirty

    def merge(self) -> None:
        """The transaction committed: dirty writes are now the committed state."""
        c = self._committed
        for k, v in self._dirty.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        self._dirty = {}

    def discard(self) -> None:
        """The transaction aborted: back to the last committed state."""
        self._dirty = {}

    def committed_snapshot(self) -> dict[bytes, bytes]:
        return dict(self._committed)


def ensure_changelogs(admin: Any, app_id: str, topics: Iterable[str], replication: int) -> dict[str, int]:
    """Create missing compacted changelogs (one per input topic, same partition count); check counts.

    Returns the partition count of each input topic. A count mismatch is refused: changelog partition
    must equal input partition, or restored state would belong to the wrong keys.
    """
    from confluent_kafka.admin import NewTopic

    topics = list(topics)
    md = admin.list_topics(timeout=15).topics
    counts: dict[str, int] = {}
    for t in topics:
        if t not in md or md[t].error is not None:
            raise ValueError(f"input topic {t!r} does not exist")
        counts[t] = len(md[t].partitions)
    new = [
        NewTopic(changelog_topic(app_id, t), counts[t], replication, config={"cleanup.policy": "compact"})
        for t in topics
        if changelog_topic(app_id, t) not in md
    ]
    if new:
        for name, fut in admin.create_topics(new).items():
            try:
                fut.result(15)
                log.info("changelog created %s", kv(topic=name))
            except Exception as exc:  # a concurrent worker created it first: fine, counts checked below
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    deadline = time.monotonic() + 15
    while True:
        md = admin.list_topics(timeout=15).topics
        missing = [changelog_topic(app_id, t) for t in topics if changelog_topic(app_id, t) not in md]
        if not missing:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"changelog topics not visible: {missing}")
        time.sleep(0.1)
    for t in topics:
        n = len(md[changelog_topic(app_id, t)].partitions)
        if n != counts[t]:
            raise ValueError(f"changelog of {t!r} has {n} partitions, the topic has {counts[t]}")
    return counts


def restore(
    consumer: Any, app_id: str, tps: list[tuple[str, int]], timeout_s: float
) -> dict[Any, dict[bytes, bytes]]:
    """Read the changelog partitions of ``tps`` to their end (read_committed) into dicts.

    "End" = the high watermark taken now, and the reader must pass it: a dead worker's open transaction
    holds the last stable offset below it until the coordinator aborts it, and stopping at the LSO then
    could miss a transaction that is committing. ``consumer`` is a group-less restore consumer
    (``StreamConfig.restore_conf``) used with ``assign()`` only.
    """
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

    out: dict[Any, dict[bytes, bytes]] = {tp: {} for tp in tps}
    by_cl: dict[tuple[str, int], Any] = {}
    ends: dict[tuple[str, int], int] = {}
    deadline = time.monotonic() + timeout_s
    for tp in tps:
        cl = (changelog_topic(app_id, tp[0]), tp[1])
        lo, hi = _watermarks(consumer, TopicPartition(cl[0], cl[1]), deadline)
        if hi > lo:
            by_cl[cl] = tp
            ends[cl] = hi
    if not ends:
        return out
    consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in ends])
    pending = set(ends)
    n = 0
    try:
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"changelog restore did not reach the end: {sorted(pending)}")
            for m in consumer.consume(1000, 0.2):
                cl = (m.topic(), m.partition())
                err = m.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise RuntimeError(f"changelog restore {cl}: {err}")
                    if m.offset() >= ends.get(cl, 0):
                        pending.discard(cl)
                    continue
                d = out[by_cl[cl]]
                k, v = m.key(), m.value()
                if k is not None:
                    if v is None:
                        d.pop(k, None)
                    else:
                        d[k] = v
                    n += 1
                if m.offset() + 1 >= ends[cl]:
                    pending.discard(cl)
            if pending:
                # Aborted batches and transaction markers deliver nothing: the position still moves.
                for tp in consumer.position([TopicPartition(t, p) for t, p in pending]):
                    if tp.offset >= ends[(tp.topic, tp.partition)]:
                        pending.discard((tp.topic, tp.partition))
    finally:
        consumer.unassign()
    log.info("state restored %s", kv(partitions=len(tps), records=n))
    return out


def _watermarks(consumer: Any, tp: Any, deadline: float) -> tuple[int, int]:
    """The partition's (low, high) watermarks, retried until ``deadline``: when the broker that led the
    changelog partition has just died, the lookup times out until its leadership moves (seconds)."""
    from confluent_kafka import KafkaException

    while True:
        try:
            lo, hi = consumer.get_watermark_offsets(
                tp, timeout=max(1.0, min(15.0, deadline - time.monotonic()))
            )
            return int(lo), int(hi)
        except KafkaException as exc:
            err = exc.args[0]
            if err.fatal() or time.monotonic() > deadline:
                raise
            log.warning(
                "changelog watermarks retry %s", kv(topic=tp.topic, partition=tp.partition, error=err)
            )
            time.sleep(0.5)
