"""Reading a topic to its end: every record up to the high watermarks taken when the read starts.

One reader for "what is on this topic now": producer sessions read their markers and a crashed session's
last seq with it, and tests read what a stopped writer left ("exactly n, and no more") without waiting out
a timeout for an n+1st record that must not come. Offsets that hold no record (compacted away, transaction
markers) are recognised by the consumer's position, so a read ends at the watermark, not after an idle wait.
The caller's consumer decides the isolation level; under ``read_committed`` the read waits (up to
``timeout``) for open transactions below the watermark to end.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, TopicPartition


def read_to_end(
    c: Consumer, topic: str, *, tail: int | None = None, timeout: float = 15.0, strict: bool = False
) -> list[Any] | None:
    """Every record of ``topic`` (only the last ``tail`` per partition when given) up to the high
    watermarks read first; error events are skipped. None when the topic does not exist or reports an
    error. At ``timeout`` the records read so far are returned, or with ``strict`` ``TimeoutError`` is
    raised naming the partitions not at their end."""
    md = c.list_topics(topic, timeout=10).topics.get(topic)
    if md is None or md.error is not None:
        return None
    ends: dict[int, int] = {}
    tps: list[TopicPartition] = []
    for p in sorted(md.partitions):
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        ends[p] = hi
        tps.append(TopicPartition(topic, p, lo if tail is None else max(lo, hi - tail)))
    out: list[Any] = []
    todo = {tp.partition for tp in tps if tp.offset < ends[tp.partition]}
    if not todo:
        return out
    c.assign(tps)
    deadline = time.monotonic() + timeout
    while todo and time.monotonic() < deadline:
        msgs = c.consume(500, 0.2)
        for m in msgs:
            if m.error() is not None:
                continue
            out.append(m)
            if (m.offset() or 0) + 1 >= ends[m.partition() or 0]:
                todo.discard(m.partition() or 0)
        if not msgs:  # offsets without a record (compacted away, control records): ask where we are
            for tp in c.position([TopicPartition(topic, p) for p in todo]):
                if tp.offset >= ends[tp.partition]:
                    todo.discard(tp.partition)
    if todo and strict:
        raise TimeoutError(f"{topic}: partitions {sorted(todo)} not at their end after {timeout} s")
    return out
