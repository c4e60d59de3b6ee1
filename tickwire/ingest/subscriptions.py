"""`tickwire subscriptions add|remove|list`: edit the desired sets on the compacted control topic.

Each change reads the topic to its end, computes the new FULL set for the key and writes it; running
producers apply the difference live.
"""

from __future__ import annotations

import argparse
import getpass
import os
import socket
import sys
import time

from tickwire import logs, vendors
from tickwire.contract.codec import Codec, Subscription
from tickwire.contract.control import CONTROL_TOPIC, ControlReader, control_key
from tickwire.ingest.producer import RawProducer


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tickwire subscriptions",
        description="Add/remove/list desired vendor subscriptions (compacted control topic).",
    )
    p.add_argument("action", choices=("add", "remove", "list"))
    p.add_argument(
        "vendor", nargs="?", help=" | ".join(v for s in vendors.specs().values() for v in s.control_vendors)
    )
    p.add_argument("stream_type", nargs="?", help="e.g. trades, quotes, bars, aggTrade, depth@100ms, ticker")
    p.add_argument("symbols", nargs="*", help="vendor symbols (add/remove)")
    p.add_argument(
        "--bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
        help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:19092)",
    )
    p.add_argument("--topic-prefix", default="", help="prefix of the control topic name (tests)")
    p.add_argument("--registry", default=None, help="schema registry URL (default: local schema ids)")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logs.setup()
    topic = f"{args.topic_prefix}{CONTROL_TOPIC}"
    codec = Codec(args.registry)
    reader = ControlReader(args.bootstrap, topic, codec)
    try:
        current = reader.read_to_end()
    finally:
        reader.close()
    if args.action == "list":
        for key in sorted(current):
            sub = current[key]
            if args.vendor and sub.vendor != args.vendor:
                continue
            if args.stream_type and sub.stream_type != args.stream_type:
                continue
            print(f"{key}\t{','.join(sub.symbols)}")
        return 0
    if not args.vendor or not args.stream_type or not args.symbols:
        print("subscriptions: add/remove need VENDOR TYPE SYMBOL...", file=sys.stderr)
        return 2
    key = control_key(args.vendor, args.stream_type)
    old = set(current[key].symbols) if key in current else set()
    new = old | set(args.symbols) if args.action == "add" else old - set(args.symbols)
    if key in current and new == old:
        print(f"{key}\t{','.join(sorted(new))}\t(unchanged)")
        return 0
    sub = Subscription(
        vendor=args.vendor,
        stream_type=args.stream_type,
        symbols=tuple(sorted(new)),
        updated_ts=time.time_ns(),
        updated_by=f"{getpass.getuser()}@{socket.gethostname()}",
    )
    producer = RawProducer(args.bootstrap, client_id="tickwire-subscriptions", linger_ms=0)
    producer.produce(topic, codec.encode(sub), key.encode(), [], stream="control")
    if producer.flush(30) != 0:
        print(f"subscriptions: could not write {key} to {topic}", file=sys.stderr)
        return 1
    print(f"{key}\t{','.join(sub.symbols)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
