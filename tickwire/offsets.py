"""`tickwire replay offsets`: reset a consumer group's offsets, with the safety of
``kafka-consumer-groups --reset-offsets``.

Refuses while the group has active members (a running consumer would overwrite the reset at its next
commit). Prints the plan (topic, partition, current, new, lag) first; dry-run unless ``--execute``.
``--to-datetime`` takes the first offset whose timestamp is at or after the instant (past the end: the
log end). ``--shift-by N`` moves from the committed offset (earliest when none) and clamps to
[earliest, latest].

Resetting a tickwire normalizer's group re-normalizes that range: the normalizer notices the rewind and
drops the affected partitions' dedupe and bar state (see tickwire/normalize/pipeline.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import dataclass
from typing import Any

from tickwire.contract.kafka_security import client_conf
from tickwire.logs import setup

ACTIVE_STATES = {"STABLE", "PREPARING_REBALANCE", "COMPLETING_REBALANCE", "ASSIGNING", "RECONCILING"}


class OffsetsError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class PlanRow:
    topic: str
    partition: int
    current: int | None  # committed offset, None when the group has none
    new: int
    earliest: int
    latest: int

    @property
    def lag(self) -> int:
        return self.latest - self.new


def parse_datetime(text: str) -> int:
    """ISO 8601 -> epoch milliseconds; a naive time is taken as UTC."""
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1000)


def new_offset(
    mode: str, *, current: int | None, earliest: int, latest: int, shift: int = 0, at_time: int | None = None
) -> int:
    """The target offset for one partition (pure)."""
    if mode == "earliest":
        return earliest
    if mode == "latest":
        return latest
    if mode == "datetime":
        # offsets_for_times answers -1 when no record is at or after the instant: the log end.
        return latest if at_time is None or at_time < 0 else max(earliest, min(at_time, latest))
    if mode == "shift":
        base = earliest if current is None else current
        return max(earliest, min(base + shift, latest))
    raise ValueError(f"unknown mode {mode!r}")


def _result(fut: Any, timeout: float = 15.0) -> Any:
    return fut.result(timeout)


def group_members(admin: Any, group: str) -> tuple[str, int]:
    desc = _result(admin.describe_consumer_groups([group])[group])
    state = getattr(desc.state, "name", str(desc.state))
    return state, len(desc.members or [])


def plan(
    admin: Any, group: str, topics: list[str], mode: str, shift: int = 0, ts_ms: int | None = None
) -> list[PlanRow]:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import OffsetSpec

    md = admin.list_topics(timeout=15).topics
    tps: list[TopicPartition] = []
    for t in topics:
        if t not in md:
            raise OffsetsError(f"topic {t!r} does not exist")
        tps += [TopicPartition(t, p) for p in sorted(md[t].partitions)]
    if not tps:
        raise OffsetsError("no partitions to reset")

    def offsets(spec: Any) -> dict[tuple[str, int], int]:
        res = admin.list_offsets({tp: spec for tp in tps})
        return {(tp.topic, tp.partition): _result(f).offset for tp, f in res.items()}

    earliest = offsets(OffsetSpec.earliest())
    latest = offsets(OffsetSpec.latest())
    at: dict[tuple[str, int], int] = offsets(OffsetSpec.for_timestamp(ts_ms)) if ts_ms is not None else {}
    committed_req = [ConsumerGroupTopicPartitions(group, tps)]
    committed_res = _result(admin.list_consumer_group_offsets(committed_req)[group])
    committed = {
        (tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None)
        for tp in committed_res.topic_partitions
    }
    rows = []
    for tp in tps:
        k = (tp.topic, tp.partition)
        cur = committed.get(k)
        rows.append(
            PlanRow(
                tp.topic,
                tp.partition,
                cur,
                new_offset(
                    mode, current=cur, earliest=earliest[k], latest=latest[k], shift=shift, at_time=at.get(k)
                ),
                earliest[k],
                latest[k],
            )
        )
    return rows


def render(rows: list[PlanRow]) -> str:
    head = ("TOPIC", "PARTITION", "CURRENT", "NEW", "LAG")
    body = [
        (r.topic, str(r.partition), "-" if r.current is None else str(r.current), str(r.new), str(r.lag))
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(5)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [head, *body]
    )


def execute(admin: Any, group: str, rows: list[PlanRow]) -> None:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    req = [ConsumerGroupTopicPartitions(group, [TopicPartition(r.topic, r.partition, r.new) for r in rows])]
    res = _result(admin.alter_consumer_group_offsets(req)[group])
    for tp in res.topic_partitions:
        if tp.error is not None:
            raise OffsetsError(f"{tp.topic}[{tp.partition}]: {tp.error}")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tickwire replay offsets", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--group", required=True, help="consumer group id (e.g. tickwire-normalizer, tickwire-bridge-redis)"
    )
    ap.add_argument("--topic", action="append", default=[], help="topic to reset (repeatable)")
    ap.add_argument(
        "--all-topics", action="store_true", help="every topic the group has committed offsets for"
    )
    to = ap.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true")
    to.add_argument("--to-latest", action="store_true")
    to.add_argument("--to-datetime", metavar="ISO", help="e.g. 2024-05-01T13:30:00Z (naive = UTC)")
    to.add_argument("--shift-by", type=int, metavar="N", help="move by N (negative = back), clamped")
    run = ap.add_mutually_exclusive_group()
    run.add_argument("--dry-run", action="store_true", help="show the plan only (default)")
    run.add_argument("--execute", action="store_true", help="commit the new offsets")
    ap.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS)")
    return ap


def main(argv: list[str]) -> int:
    import os

    from confluent_kafka.admin import AdminClient

    setup()
    a = _parser().parse_args(argv)
    if not a.topic and not a.all_topics:
        print("error: give --topic (repeatable) or --all-topics", file=sys.stderr)
        return 2
    bootstrap = a.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    admin = AdminClient(client_conf(bootstrap))
    try:
        state, members = group_members(admin, a.group)
        if members or state in ACTIVE_STATES:
            print(
                f"error: consumer group {a.group!r} has {members} active member(s) (state {state}); "
                "stop its consumers first, offsets of a running group cannot be reset",
                file=sys.stderr,
            )
            return 1
        topics = list(dict.fromkeys(a.topic))
        if a.all_topics:
            topics += [t for t in _committed_topics(admin, a.group) if t not in topics]
        mode, ts_ms = "earliest", None
        if a.to_latest:
            mode = "latest"
        elif a.to_datetime:
            mode, ts_ms = "datetime", parse_datetime(a.to_datetime)
        elif a.shift_by is not None:
            mode = "shift"
        rows = plan(admin, a.group, topics, mode, shift=a.shift_by or 0, ts_ms=ts_ms)
        print(render(rows))
        if not a.execute:
            print("\ndry run: nothing changed (use --execute to commit these offsets)")
            return 0
        execute(admin, a.group, rows)
        print(f"\noffsets of group {a.group!r} reset ({len(rows)} partitions)")
        return 0
    except (OffsetsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _committed_topics(admin: Any, group: str) -> list[str]:
    from confluent_kafka import ConsumerGroupTopicPartitions

    res = _result(admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group])
    return sorted({tp.topic for tp in res.topic_partitions if tp.offset >= 0})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
