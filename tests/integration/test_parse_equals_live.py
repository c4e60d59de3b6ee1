"""`tickwire parse` and the live normalizer publish the same records for the same raw records.

A recorded session (Binance, Coinbase; from shared/, else the repository's fixture) goes through
`tickwire parse`; the raw records it stands for (same payloads, same envelopes, one partition) are
produced to a private
`<vendor>.raw` and normalized by a real `tickwire normalize` process. The canonical records it commits
(read_committed), decoded, must equal parse's output line for line: same topics, keys, values and order
per topic — validation, crossed flags, dedupe, gaps and aggregated bars included.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import unique_name, wait_for
from tests.integration.test_normalize_kafka import Worker, produce, read_all
from tickwire.contract.codec import Codec, to_json_dict
from tickwire.normalize.parse_cli import build_argparser, raw_records, run
from tickwire.recording import received
from tickwire.resources import recorded_dir
from tickwire.topic_admin import ensure_topics

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# vendor -> (shared recording, the repository's smaller copy when shared/ is absent)
SESSIONS = {
    "binance": (recorded_dir() / "cryptofeed-BINANCE.ws.1.0", FIXTURES / "binance" / "ws-session.txt"),
    "coinbase": (
        recorded_dir() / "cryptofeed-COINBASE.ws.28.0",
        FIXTURES / "coinbase" / "ws-session-head.txt",
    ),
}
TOPICS = ("crypto_trades_realtime", "crypto_quotes_realtime", "crypto_book_realtime", "crypto_bars_staging")


Stream = dict[tuple[str, str], list[Any]]  # (topic, key) -> values in order: Kafka orders per key


def offline(args: argparse.Namespace) -> Stream:
    out, err = io.StringIO(), io.StringIO()
    assert run(args, out, err) == 0, err.getvalue()
    per_key: Stream = collections.defaultdict(list)
    for line in out.getvalue().splitlines():
        doc = json.loads(line)
        per_key[(doc["topic"], doc["key"])].append(doc["value"])
    return dict(per_key)


@pytest.mark.parametrize("vendor", sorted(SESSIONS))
def test_parse_output_equals_live_normalizer(vendor: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    shared, fixture = SESSIONS[vendor]
    session = shared if shared.exists() else fixture
    args = build_argparser().parse_args(["--source", vendor, str(session)])
    want = offline(args)
    assert sum(len(v) for v in want.values()) > 100 and any(t == "crypto_trades_realtime" for t, _ in want)
    print(vendor, {t: sum(len(v) for (tt, _), v in want.items() if tt == t) for t in {t for t, _ in want}})
    assert len(received(session)) > 100

    prefix = unique_name("pl") + "."
    ensure_topics(kafka_bootstrap, {prefix + f"{vendor}.raw": 1})
    with session.open("rb") as fh:
        msgs = [(0, None, payload, env.to_headers()) for _, payload, env in raw_records(args, fh)]
    produce(kafka_bootstrap, prefix + f"{vendor}.raw", msgs)
    w = Worker(prefix, kafka_bootstrap, tmp_path / "worker.log", vendors=vendor)
    w.start()
    codec = Codec(None)
    topics = [prefix + t for t in (*TOPICS, "tickwire.gaps")]

    def live() -> Stream:
        got: Stream = collections.defaultdict(list)
        for (topic, _), rows in read_all(kafka_bootstrap, topics, idle=1.0).items():
            for key, value, _ in rows:
                got[(topic.removeprefix(prefix), key.decode())].append(to_json_dict(codec.decode(value)))
        return dict(got)

    try:
        wait_for(lambda: live() == want, timeout=90, interval=1.0, what="live output equal to parse")
    except AssertionError:
        got = live()
        diff = {k: (len(want.get(k, [])), len(got.get(k, []))) for k in set(want) | set(got)}
        first = next(
            ((k, a, b) for k in want for a, b in zip(want[k], got.get(k, []), strict=False) if a != b), None
        )
        raise AssertionError(f"records per key (parse, live) {diff}; first difference {first}") from None
    finally:
        w.kill(signal.SIGTERM)
