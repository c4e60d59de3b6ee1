"""Small test helpers shared by every test package: polling with a deadline, unique names."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def unique_name(prefix: str = "t") -> str:
    """A name no parallel test run shares (topics, groups, Redis prefixes, NATS streams)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, what: str = "") -> T:
    """Poll ``predicate`` until it returns a truthy value (returned) or fail after ``timeout`` seconds.

    The last exception raised by the predicate, if any, is chained to the timeout error.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # retried until the deadline, reported then
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or predicate!r}"
            ) from last_exc
        time.sleep(interval)


async def wait_for_async(
    predicate: Callable[[], Awaitable[T]], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> T:
    """``wait_for`` for coroutine predicates."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = await predicate()
            if value:
                return value
        except Exception as e:
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or predicate!r}"
            ) from last_exc
        await asyncio.sleep(interval)


def consume_until(
    bootstrap: str, topic: str, until: Callable[[list[Any]], bool], timeout: float
) -> list[Any]:
    """Messages of ``topic`` from the earliest offset (a fresh consumer group) until ``until(messages)``
    holds or ``timeout`` seconds pass; what was read either way (error events skipped)."""
    from confluent_kafka import Consumer

    c = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"}
    )
    c.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(out):
            m = c.poll(0.2)
            if m is not None and not m.error():
                out.append(m)
    finally:
        c.close()
    return out


def consume_to_end(bootstrap: str, topic: str, timeout: float = 30.0) -> list[Any]:
    """Every message of ``topic`` up to the high watermarks read when called (``tickwire.topic_read``, the
    producers' own reader), once the topic exists.

    For "exactly n, and no more" checks once the writers have stopped and flushed: waiting for an n+1st
    that must not come would cost the whole timeout."""
    from confluent_kafka import Consumer

    from tickwire.topic_read import read_to_end

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "enable.auto.commit": False})
    got: list[list[Any]] = []

    def read() -> bool:
        records = read_to_end(c, topic, timeout=timeout, strict=True)  # None: no such topic (yet)
        if records is not None:
            got.append(records)
        return records is not None

    try:
        wait_for(read, timeout, what=f"{topic} read to its end")
        return got[0]
    finally:
        c.close()


class FakeMessage:
    """The accessors of a consumed Kafka record that consumers of ``confluent_kafka.Message`` read (a
    real Message cannot be constructed outside the client): partition 0, key ``b"k"``, no headers."""

    def __init__(self, topic: str, offset: int, value: bytes, ts_ms: int = 0) -> None:
        self._t, self._o, self._v, self._ts = topic, offset, value, ts_ms

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._o

    def value(self) -> bytes:
        return self._v

    def key(self) -> bytes:
        return b"k"

    def headers(self) -> list[tuple[str, bytes]]:
        return []

    def timestamp(self) -> tuple[int, int]:
        return (1, self._ts)

    def error(self) -> None:
        return None
