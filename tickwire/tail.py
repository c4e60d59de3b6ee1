"""`tickwire tail TOPIC`: decode a canonical Avro topic to JSON lines (same shape as `tickwire parse`).

Reads with partitions assigned directly (no consumer group join, no offset commits), so tailing never
disturbs a real consumer group. Without ``--from-beginning`` it starts at the end of each partition.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import IO, Any

from tickwire.contract.codec import Codec, CodecError, to_json_dict
from tickwire.contract.kafka_security import client_conf


def _consumer(bootstrap: str) -> Any:
    from confluent_kafka import Consumer

    return Consumer(
        client_conf(bootstrap)
        | {
            "group.id": f"tickwire-tail-{os.getpid()}-{time.time_ns()}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )


def run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

    codec = Codec(args.registry)
    consumer = _consumer(args.bootstrap)
    try:
        md = consumer.list_topics(args.topic, timeout=10)
        tmd = md.topics.get(args.topic)
        if tmd is None or tmd.error is not None or not tmd.partitions:
            err.write(f"tickwire tail: topic {args.topic!r} not found\n")
            return 2
        start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
        consumer.assign([TopicPartition(args.topic, p, start) for p in sorted(tmd.partitions)])
        shown = 0
        idle_deadline = time.monotonic() + args.idle if args.idle else None
        while args.max is None or shown < args.max:
            msg = consumer.poll(0.5)
            if msg is None:
                if idle_deadline is not None and time.monotonic() > idle_deadline:
                    break
                continue
            if msg.error():
                err.write(f"tickwire tail: {msg.error()}\n")
                continue
            if idle_deadline is not None:
                idle_deadline = time.monotonic() + args.idle
            key = msg.key()
            if args.symbol is not None and key is not None and key.decode(errors="replace") != args.symbol:
                continue
            try:
                rec = codec.decode(msg.value() or b"")
            except CodecError as exc:
                err.write(
                    json.dumps({"error": str(exc), "partition": msg.partition(), "offset": msg.offset()})
                    + "\n"
                )
                continue
            value = to_json_dict(rec)
            if args.symbol is not None and value.get("symbol", args.symbol) != args.symbol:
                continue
            doc = {
                "topic": msg.topic(),
                "key": None if key is None else key.decode(errors="replace"),
                "schema": value["schema"],
                "value": value,
            }
            out.write(json.dumps(doc, separators=(",", ":")) + "\n")
            out.flush()
            shown += 1
    finally:
        consumer.close()
    return 0


def build_argparser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="tickwire tail", description="Decode a canonical Avro topic to JSON lines."
    )
    ap.add_argument("topic")
    ap.add_argument("--from-beginning", action="store_true", help="start at the earliest offsets")
    ap.add_argument("--symbol", help="only records of this canonical symbol")
    ap.add_argument(
        "--bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
        help="Kafka bootstrap servers (default $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:19092)",
    )
    ap.add_argument(
        "--registry", default=os.environ.get("SCHEMA_REGISTRY_URL") or None, help="schema registry URL"
    )
    ap.add_argument("--max", type=int, help="stop after N records")
    ap.add_argument("--idle", type=float, help="stop after this many seconds without a message")
    return ap


def main(argv: list[str]) -> int:
    args = build_argparser().parse_args(argv)
    try:
        return run(args, sys.stdout, sys.stderr)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return 0
