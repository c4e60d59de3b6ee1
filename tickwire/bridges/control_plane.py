"""Legacy control plane (seed 000) in the Redis bridge: Redis subscription events -> control topic.

Listens on ``system:subscription_updates``. Event JSON (canonical form first, accepted variants after):

    {"action": "subscribe" | "unsubscribe", "type": "stock" | "crypto", "symbols": ["AAPL", ...]}

- action key: ``action`` | ``event`` | ``op``; values ``subscribe``/``add``/``sub``,
  ``unsubscribe``/``remove``/``unsub`` (any case). ``{"type": "subscribe", "assetType": ...}`` works too.
- type key: ``type`` | ``assetType`` | ``asset_type`` | ``assetClass`` | ``market``; ``stock``/``stocks``/
  ``equity``/``us_equity`` -> stock, ``crypto`` -> crypto. Missing: per symbol, ``/`` in it -> crypto.
- symbols: ``symbols`` (list or comma-separated string) or ``symbol``; stripped and upper-cased.

Each event updates the ``active_subscriptions:stock|crypto`` sets (SADD/SREM, idempotent with a gateway
that maintains them too) and then writes, for every control key the type maps to (config ``control_map``:
stock -> ``alpaca:trades``, ``alpaca:bars``; crypto -> ``alpaca-crypto:trades``, ``alpaca-crypto:bars``),
a ``Subscription`` with the key's new FULL set to the compacted control topic. The full set is the
topic's current set plus (subscribe) or minus (unsubscribe) the event's symbols, so sets managed by other
tools (``tickwire subscriptions``) are kept. On start, ``reconcile()`` (as the seed's) adds the Redis sets'
members to the topic's sets; it never removes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from tickwire.backoff import Backoff
from tickwire.bridges.config import RedisBridgeSettings
from tickwire.contract.kafka_security import client_conf
from tickwire.logs import kv

log = logging.getLogger(__name__)

Action = Literal["subscribe", "unsubscribe"]
SubType = Literal["stock", "crypto"]
Changes = dict[str, tuple[set[str], set[str]]]  # control key -> (symbols to add, symbols to remove)

_ACTIONS: dict[str, Action] = {
    "subscribe": "subscribe",
    "add": "subscribe",
    "sub": "subscribe",
    "unsubscribe": "unsubscribe",
    "remove": "unsubscribe",
    "unsub": "unsubscribe",
}
_TYPES: dict[str, SubType] = {
    "stock": "stock",
    "stocks": "stock",
    "equity": "stock",
    "us_equity": "stock",
    "crypto": "crypto",
}
_ACTION_KEYS = ("action", "event", "op", "type")
_TYPE_KEYS = ("type", "assetType", "asset_type", "assetClass", "market")
CHANNEL = "system:subscription_updates"
UPDATED_BY = "redis-control-plane"


class ControlEventError(ValueError):
    pass


@dataclass(frozen=True)
class ControlEvent:
    action: Action
    type: SubType
    symbols: tuple[str, ...]


def parse_event(data: bytes | str) -> list[ControlEvent]:
    """Parse one ``system:subscription_updates`` message; one event per subscription type it touches."""
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise ControlEventError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ControlEventError("event is not a JSON object")
    action: Action | None = None
    action_key = None
    for key in _ACTION_KEYS:
        v = obj.get(key)
        if isinstance(v, str) and v.strip().lower() in _ACTIONS:
            action, action_key = _ACTIONS[v.strip().lower()], key
            break
    if action is None:
        raise ControlEventError(f"no subscribe/unsubscribe action in {sorted(obj)}")
    stype: SubType | None = None
    for key in _TYPE_KEYS:
        v = obj.get(key)
        if key != action_key and isinstance(v, str):
            if v.strip().lower() not in _TYPES:
                raise ControlEventError(f"unknown subscription type {v!r}")
            stype = _TYPES[v.strip().lower()]
            break
    raw = obj.get("symbols", obj.get("symbol"))
    if isinstance(raw, str):
        raw = raw.split(",")
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ControlEventError("symbols must be a string or a list of strings")
    symbols = [x.strip().upper() for x in raw if x.strip()]
    if not symbols:
        raise ControlEventError("no symbols")
    if stype is not None:
        return [ControlEvent(action, stype, tuple(dict.fromkeys(symbols)))]
    crypto = tuple(dict.fromkeys(x for x in symbols if "/" in x))
    stock = tuple(dict.fromkeys(x for x in symbols if "/" not in x))
    out = [ControlEvent(action, "stock", stock)] if stock else []
    return out + ([ControlEvent(action, "crypto", crypto)] if crypto else [])


class ControlPlane:
    def __init__(self, s: RedisBridgeSettings, client: Any = None) -> None:
        from tickwire.bridges.redis_bridge import connect

        self.s = s
        self.r = client or connect(s.redis_url.get_secret_value())
        self.channel = s.key_prefix + CHANNEL
        self.topic = s.prefixed(s.control_topic)
        self.ready = asyncio.Event()

    def set_key(self, stype: str) -> str:
        return f"{self.s.key_prefix}active_subscriptions:{stype}"

    # ---- Kafka side (blocking confluent-kafka calls, run in a thread) -----------------------------

    def _update_topic_sync(self, changes: Changes) -> dict[str, tuple[str, ...]]:
        """Apply (add, remove) per control key to the topic's current sets; write the changed keys."""
        from confluent_kafka import Producer

        from tickwire.contract.codec import Codec, Subscription
        from tickwire.contract.control import ControlReader

        codec = Codec(self.s.schema_registry_url)
        reader = ControlReader(self.s.kafka_bootstrap_servers, self.topic, codec)
        try:
            current = reader.read_to_end()
        finally:
            reader.close()
        producer = Producer(
            client_conf(self.s.kafka_bootstrap_servers) | {"linger.ms": 0, **self.s.kafka_client}
        )
        written: dict[str, tuple[str, ...]] = {}
        for key, (add, remove) in changes.items():
            old = set(current[key].symbols) if key in current else set()
            new = (old | add) - remove
            if new == old:  # never write an unchanged (or new empty) set: ingest would drop its defaults
                continue
            vendor, _, stream_type = key.partition(":")
            sub = Subscription(
                vendor=vendor,
                stream_type=stream_type,
                symbols=tuple(sorted(new)),
                updated_ts=time.time_ns(),
                updated_by=UPDATED_BY,
            )
            producer.produce(self.topic, value=codec.encode(sub), key=key.encode())
            written[key] = sub.symbols
        if producer.flush(30) != 0:
            raise RuntimeError(f"control topic {self.topic}: records not delivered")
        return written

    async def _update_topic(self, changes: Changes) -> dict[str, tuple[str, ...]]:
        written = await asyncio.to_thread(self._update_topic_sync, changes)
        for key, symbols in written.items():
            log.info("control subscription written %s", kv(key=key, symbols=",".join(symbols)))
        return written

    # ---- Redis side -----------------------------------------------------------------------------

    async def reconcile(self) -> dict[str, tuple[str, ...]]:
        """Add the members of the active_subscriptions sets to the topic's sets (never removes)."""
        changes: Changes = {}
        for stype, keys in self.s.control_map.items():
            members = {
                m.decode() if isinstance(m, bytes) else m for m in await self.r.smembers(self.set_key(stype))
            }
            for key in keys:
                changes[key] = (members, set())
        return await self._update_topic(changes)

    async def apply(self, events: list[ControlEvent]) -> dict[str, tuple[str, ...]]:
        changes: Changes = {}
        pipe = self.r.pipeline(transaction=True)
        for ev in events:
            if ev.action == "subscribe":
                pipe.sadd(self.set_key(ev.type), *ev.symbols)
            else:
                pipe.srem(self.set_key(ev.type), *ev.symbols)
            for key in self.s.control_map.get(ev.type, ()):
                add, remove = changes.setdefault(key, (set(), set()))
                (add if ev.action == "subscribe" else remove).update(ev.symbols)
                (remove if ev.action == "subscribe" else add).difference_update(ev.symbols)
        await pipe.execute()
        return await self._update_topic(changes)

    async def handle(self, data: bytes | str) -> None:
        try:
            events = parse_event(data)
        except ControlEventError as exc:
            log.warning("control event ignored %s", kv(error=exc, data=str(data)[:200]))
            return
        bo = Backoff(initial_s=self.s.retry_base_s, max_s=self.s.retry_max_s)
        while True:  # an accepted event is applied, whatever it takes
            try:
                await self.apply(events)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("control event apply failed %s", kv(attempt=bo.attempt + 1, error=exc))
                await asyncio.sleep(bo.next_delay())

    async def run(self) -> None:
        """Subscribe, reconcile, then follow events; reconnects (and reconciles again) after failures."""
        bo = Backoff(initial_s=self.s.retry_base_s, max_s=self.s.retry_max_s)
        while True:
            pubsub = self.r.pubsub()
            try:
                # Subscribe before reconciling so no event falls between the two.
                await pubsub.subscribe(self.channel)
                await self.reconcile()
                self.ready.set()
                bo.reset()
                log.info("control plane listening %s", kv(channel=self.channel, topic=self.topic))
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is not None and msg.get("type") == "message":
                        await self.handle(msg["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.ready.clear()
                delay = bo.next_delay()
                log.warning("control plane error, restarting %s", kv(error=exc, delay=round(delay, 2)))
                await asyncio.sleep(delay)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:  # closing a broken connection may fail too
                    log.debug("pubsub close failed")
