"""Round trips through the real Redis and NATS JetStream servers."""

from __future__ import annotations

import asyncio

import nats
import pytest
import redis
from nats.js.api import StreamConfig

from tests.helpers import unique_name, wait_for

pytestmark = pytest.mark.integration


def test_redis_round_trip(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    prefix = unique_name("test")
    try:
        assert r.set(f"{prefix}:k", b"25.3519")
        assert r.get(f"{prefix}:k") == b"25.3519"
        pipe = r.pipeline()
        for i in range(100):
            pipe.hset(f"{prefix}:h", f"f{i}", i)
        pipe.execute()
        assert r.hlen(f"{prefix}:h") == 100
        assert r.hget(f"{prefix}:h", "f42") == b"42"

        sub = r.pubsub()
        sub.subscribe(f"{prefix}:chan")
        wait_for(lambda: sub.get_message(timeout=0.1), what="subscribe confirmation")
        assert r.publish(f"{prefix}:chan", b"hello") == 1
        msg = wait_for(lambda: sub.get_message(timeout=0.1), what="published message")
        assert msg["data"] == b"hello"
        sub.close()
    finally:
        r.delete(f"{prefix}:k", f"{prefix}:h")
        r.close()


def test_nats_jetstream_round_trip(nats_url: str) -> None:
    asyncio.run(_jetstream(nats_url))


async def _jetstream(url: str) -> None:
    nc = await nats.connect(url, connect_timeout=5)
    js = nc.jetstream()
    stream = unique_name("TEST")
    subject = f"{stream}.ticks"
    try:
        await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.>"]))
        acks = [
            await js.publish(subject, f"m{i}".encode(), headers={"Nats-Msg-Id": f"id{i}"}) for i in range(5)
        ]
        assert [a.seq for a in acks] == [1, 2, 3, 4, 5]
        # Same message id again: JetStream de-duplicates it.
        dup = await js.publish(subject, b"m0", headers={"Nats-Msg-Id": "id0"})
        assert dup.duplicate is True

        sub = await js.pull_subscribe(subject, durable="reader")
        got: list[bytes] = []
        while len(got) < 5:
            for m in await sub.fetch(5 - len(got), timeout=5):
                got.append(m.data)
                await m.ack()
        assert got == [b"m0", b"m1", b"m2", b"m3", b"m4"]
        info = await js.stream_info(stream)
        assert info.state.messages == 5
    finally:
        await js.delete_stream(stream)
        await nc.close()
