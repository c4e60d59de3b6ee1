"""topics.yaml loader: the real file, and clear errors naming the line for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickwire.resources import REPO_ROOT
from tickwire.topics import TopicsFileError, TopicSpec, load_topics, parse_retention

VENDORS = ["alpaca", "polygon", "binance", "coinbase", "fix", "alphavantage", "ibkr", "databento"]
CANONICAL = [
    "stock_trades_realtime",
    "stock_quotes_realtime",
    "stock_bars_staging",
    "stock_book_realtime",
    "crypto_trades_realtime",
    "crypto_quotes_realtime",
    "crypto_bars_staging",
    "crypto_book_realtime",
    "option_trades_realtime",
    "option_quotes_realtime",
    "future_trades_realtime",
    "future_quotes_realtime",
    "future_bars_staging",
    "future_book_realtime",
    "fx_trades_realtime",
    "fx_quotes_realtime",
    "fx_book_realtime",
    "option_chains_snapshot",
    "news_sentiment",
    "technical_indicators",
]


def test_real_file_has_every_topic_of_the_contract() -> None:
    specs = {s.name: s for s in load_topics()}
    expected = (
        [f"{v}.raw" for v in VENDORS]
        + [f"{v}.raw.dlq" for v in VENDORS]
        + CANONICAL
        + ["instrument_definitions", "tickwire.gaps", "tickwire.health", "control.subscriptions"]
        + ["tickwire.sessions"]
        + ["bridge.redis.dlq", "bridge.nats.dlq"]
    )
    assert sorted(specs) == sorted(expected)
    for v in VENDORS:
        assert specs[f"{v}.raw"].schema is None and specs[f"{v}.raw"].partitions == 3
        assert specs[f"{v}.raw.dlq"].schema is None
    for name in CANONICAL:
        assert specs[name].partitions == 3 and specs[name].cleanup_policy == "delete"
        assert specs[name].schema is not None and (REPO_ROOT / specs[name].schema).is_file()
    assert specs["stock_trades_realtime"].schema == "schemas/trade.avsc"
    assert specs["crypto_book_realtime"].schema == "schemas/book_update.avsc"
    for name in ("instrument_definitions", "control.subscriptions"):
        assert specs[name].compacted and specs[name].retention_ms == -1
    assert specs["control.subscriptions"].schema == "schemas/subscription.avsc"
    assert specs["tickwire.health"].configs == {"retention.ms": "86400000", "cleanup.policy": "delete"}


def test_real_topics_agree_with_routing() -> None:
    routing = pytest.importorskip("tickwire.contract.routing")
    names = {s.name for s in load_topics()}
    for attr in ("GAPS_TOPIC", "HEALTH_TOPIC", "INSTRUMENTS_TOPIC", "SUBSCRIPTIONS_TOPIC"):
        assert getattr(routing, attr) in names
    for prefix in routing.PREFIX.values():
        assert f"{prefix}_trades_realtime" in names and f"{prefix}_quotes_realtime" in names


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("7d", 604_800_000),
        ("24h", 86_400_000),
        ("30m", 1_800_000),
        ("45s", 45_000),
        ("500ms", 500),
        ("2w", 1_209_600_000),
        ("forever", -1),
        ("-1", -1),
        (-1, -1),
    ],
)
def test_parse_retention(text: object, ms: int) -> None:
    assert parse_retention(text) == ms


@pytest.mark.parametrize("bad", ["7", 7, "7 days", "1y", "", None, "-2"])
def test_parse_retention_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="bad retention"):
        parse_retention(bad)


HEADER = """\
defaults:
  partitions: 3
  replication: 1
  retention: 7d
  cleanup: delete
topics:
"""


def _load(tmp_path: Path, body: str) -> list[TopicSpec]:
    (tmp_path / "schemas").mkdir(exist_ok=True)
    (tmp_path / "schemas" / "trade.avsc").write_text("{}")
    f = tmp_path / "topics.yaml"
    f.write_text(HEADER + body)
    return load_topics(f)


def test_defaults_and_overrides(tmp_path: Path) -> None:
    specs = _load(
        tmp_path,
        """\
  - name: a.raw
    key: symbol
    schema: null
    purpose: raw
  - name: state
    partitions: 1
    cleanup: compact
    retention: forever
    key: symbol
    schema: schemas/trade.avsc
    purpose: compacted
    configs:
      segment.ms: "3600000"
""",
    )
    a, state = specs
    assert (a.partitions, a.replication, a.retention_ms, a.cleanup_policy, a.schema) == (
        3,
        1,
        604_800_000,
        "delete",
        None,
    )
    assert a.line == 7 and state.line == 11
    assert state.configs == {"retention.ms": "-1", "cleanup.policy": "compact", "segment.ms": "3600000"}
    assert state.with_prefix("x.").name == "x.state"


TOPIC = "  - name: t\n    key: k\n    schema: null\n    purpose: p\n"


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        (TOPIC + "    colour: red\n", 11, "unknown key 'colour'"),
        (TOPIC + "    retention: 7 days\n", 11, "bad retention '7 days'"),
        (TOPIC + "    partitions: 0\n", 11, "partitions must be a positive integer"),
        (TOPIC + "    cleanup: shred\n", 11, "cleanup must be one of"),
        (
            TOPIC.replace("schema: null", "schema: schemas/nope.avsc"),
            9,
            "schema file 'schemas/nope.avsc' not found",
        ),
        (TOPIC.replace("schema: null", "schema: trade.json"), 9, "schema must be null or a .avsc path"),
        (TOPIC + TOPIC, 11, "duplicate topic name 't' (first on line 7)"),
        (TOPIC + "    key: again\n", 11, "duplicate key 'key' (first on line 8)"),
        ("  - name: t\n    key: k\n    schema: null\n", 7, "topic is missing 'purpose'"),
        ("  - name: bad/name\n    key: k\n    schema: null\n    purpose: p\n", 7, "invalid topic name"),
        (TOPIC + "    configs:\n      retention.ms: '5'\n", 12, "set retention.ms with retention/cleanup"),
        (TOPIC + "    configs:\n      segment.ms: 5\n", 12, "must be a quoted string"),
    ],
)
def test_errors_name_the_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    with pytest.raises(TopicsFileError) as err:
        _load(tmp_path, body)
    assert f"topics.yaml:{line}:" in str(err.value)
    assert message in str(err.value)


def test_unknown_top_level_and_default_keys(tmp_path: Path) -> None:
    f = tmp_path / "topics.yaml"
    f.write_text("defaults:\n  partitions: 3\n  colour: red\ntopics: []\n")
    with pytest.raises(TopicsFileError, match=r"topics.yaml:3: unknown key 'colour' in defaults"):
        load_topics(f)
    f.write_text("topics: []\nextra: 1\n")
    with pytest.raises(TopicsFileError, match=r"topics.yaml:2: unknown top-level key 'extra'"):
        load_topics(f)
    f.write_text("topics:\n  - name: [a, b]\n")
    with pytest.raises(TopicsFileError, match=r"topics.yaml:2: expected a single value"):
        load_topics(f)
