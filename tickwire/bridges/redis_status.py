"""Legacy status keys from producer Heartbeats (seed 004: ``ibkr:connected``, ``monitoring:ibkr:metrics``,
``heartbeat:ibkr_ingestion``, ...), declared as data in each vendor's registry row
(``VendorSpec.status_keys``: ``(key, shape)`` pairs), never named here.

The Redis bridge runs one ``StatusKeys`` task: it reads ``tickwire.health`` (its own consumer group, from
the earliest offset; heartbeats older than the key TTL are skipped) and, for each Heartbeat of a
producer component ``ingest.<source>``, writes that source's keys with the heartbeat TTL, so a producer
that stops beating leaves its keys to expire (a missing ``connected`` key = not connected). Shapes:

- ``connected``: ``"1"`` / ``"0"`` from the heartbeat's ``connected`` stat (the vendor link is up and
  subscribed); without that stat, from its status (``ok``);
- ``metrics``: JSON of the heartbeat's stats (integers as numbers), its status and time;
- ``heartbeat``: JSON ``{"timestamp", "ts_ns", "status", "component", "instance", "connected"}``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import cache
from typing import Any

import orjson

from tickwire.bridges import shapes
from tickwire.bridges.config import RedisBridgeSettings
from tickwire.contract.kafka_security import client_conf
from tickwire.contract.records import Heartbeat
from tickwire.contract.routing import HEALTH_TOPIC
from tickwire.logs import kv

log = logging.getLogger(__name__)

SHAPES = frozenset({"connected", "metrics", "heartbeat"})
PRODUCER_PREFIX = "ingest."


@cache
def status_map() -> dict[str, tuple[tuple[str, str], ...]]:
    """source -> its declared (key, shape) pairs."""
    from tickwire import vendors

    out = {n: s.status_keys for n, s in vendors.specs().items() if s.status_keys}
    for name, keys in out.items():
        bad = [shape for _, shape in keys if shape not in SHAPES]
        if bad:
            raise ValueError(f"vendor {name}: unknown status key shapes {bad} (known: {sorted(SHAPES)})")
    return out


def _connected(hb: Heartbeat) -> bool:
    flag = hb.stats.get("connected")
    return flag == "1" if flag is not None else hb.status == "ok"


def _number(v: str) -> Any:
    return int(v) if v.lstrip("-").isdigit() else v


def status_values(
    hb: Heartbeat, keys: tuple[tuple[str, str], ...], digits: int = 3
) -> list[tuple[str, bytes]]:
    """The (key, value) writes of one heartbeat (pure)."""
    up = _connected(hb)
    stamp = shapes.iso_from_ns(hb.ts, digits)
    out: list[tuple[str, bytes]] = []
    for key, shape in keys:
        if shape == "connected":
            value = b"1" if up else b"0"
        elif shape == "metrics":
            stats = {k: _number(v) for k, v in sorted(hb.stats.items())}
            value = orjson.dumps({**stats, "status": hb.status, "timestamp": stamp, "ts_ns": hb.ts})
        else:
            value = orjson.dumps(
                {
                    "timestamp": stamp,
                    "ts_ns": hb.ts,
                    "status": hb.status,
                    "component": hb.component,
                    "instance": hb.instance,
                    "connected": up,
                }
            )
        out.append((key, value))
    return out


class StatusKeys:
    """The bridge task: ``tickwire.health`` -> the declared status keys."""

    def __init__(self, s: RedisBridgeSettings, redis: Any) -> None:
        self.s = s
        self.r = redis
        self.written = 0

    def _consumer(self) -> Any:
        from confluent_kafka import Consumer

        s = self.s
        c = Consumer(
            client_conf(s.kafka_bootstrap_servers)
            | {
                "group.id": s.full_app_id + "-status",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": True,
                "topic.metadata.refresh.interval.ms": 2000,  # the health topic may appear after us
                **s.kafka_client,
            }
        )
        c.subscribe([s.prefixed(HEALTH_TOPIC)])
        return c

    async def run(self) -> None:
        mapping = status_map()
        if not mapping:
            return
        from tickwire.contract.codec import Codec

        codec = Codec(self.s.schema_registry_url)
        consumer = await asyncio.to_thread(self._consumer)
        try:
            while True:
                msgs = await asyncio.to_thread(consumer.consume, 100, 0.5)
                latest: dict[str, Heartbeat] = {}
                for m in msgs:
                    if m.error() is not None or not m.value():
                        continue
                    try:
                        hb = codec.decode(m.value())
                    except Exception as exc:  # a bad health record must not stop the bridge
                        log.warning("undecodable health record %s", kv(error=exc))
                        continue
                    if isinstance(hb, Heartbeat) and hb.component.startswith(PRODUCER_PREFIX):
                        latest[hb.component.removeprefix(PRODUCER_PREFIX)] = hb
                await self._write(latest, mapping)
        finally:
            await asyncio.to_thread(consumer.close)

    async def _write(
        self, latest: dict[str, Heartbeat], mapping: dict[str, tuple[tuple[str, str], ...]]
    ) -> None:
        ttl = self.s.ttl_heartbeat_s
        oldest = time.time_ns() - ttl * 1_000_000_000
        writes = [
            (self.s.key_prefix + k, v)
            for source, hb in sorted(latest.items())
            if source in mapping and hb.ts >= oldest
            for k, v in status_values(hb, mapping[source], self.s.timestamp_digits)
        ]
        if not writes:
            return
        try:
            pipe = self.r.pipeline(transaction=True)
            for k, v in writes:
                pipe.set(k, v, ex=ttl)
            await pipe.execute()
            self.written += len(writes)
        except Exception as exc:  # Redis down: the next heartbeat writes again
            log.warning("status keys not written %s", kv(error=exc))
