"""RawPublisher: a stream's seq is taken only for a frame that is handed to Kafka."""

from __future__ import annotations

from typing import Any, cast

import pytest

from tickwire.contract.envelope import Envelope
from tickwire.ingest.producer import RawProducer
from tickwire.ingest.publisher import RawPublisher
from tickwire.vendors.binance.settings import BinanceSettings

pytestmark = pytest.mark.unit


class _Producer:
    """Stand-in for RawProducer: a topic with no metadata until ``ready``, then three partitions."""

    def __init__(self) -> None:
        self.ready = False
        self.sent: list[tuple[str, bytes, int | None, int]] = []

    def partitions(self, topic: str) -> int:
        if not self.ready:
            raise RuntimeError(f"no metadata for {topic}: UNKNOWN_TOPIC_OR_PART")
        return 3

    def produce(self, topic: str, value: bytes, key: bytes, headers: Any, **kw: Any) -> None:
        self.sent.append((topic, value, kw.get("partition"), Envelope.from_headers(headers).seq))


def test_a_broadcast_that_fails_before_kafka_takes_no_seq() -> None:
    prod = _Producer()
    pub = RawPublisher(
        cast(RawProducer, prod), BinanceSettings.load(), "binance", "json", encode=bytes, session=7
    )
    with pytest.raises(RuntimeError, match="no metadata"):
        pub.publish(b"{}", 1, stream="rest.exchangeInfo", broadcast=True)
    assert pub.last_seq("rest.exchangeInfo") is None
    prod.ready = True
    assert pub.publish(b"{}", 2, stream="rest.exchangeInfo", broadcast=True) == 1
    assert pub.publish(b"[]", 3, stream="rest.exchangeInfo", key="BTCUSDT") == 2
    assert prod.sent == [
        ("binance.raw", b"{}", 0, 1),
        ("binance.raw", b"{}", 1, 1),
        ("binance.raw", b"{}", 2, 1),
        ("binance.raw", b"[]", None, 2),
    ]
