"""NATS bridge: canonical records -> JetStream stream ``MARKET_DATA`` (seed 003 subjects).

Subjects ``market.<class>.<kind>``: ``market.stocks.trades``, ``market.stocks.quotes``,
``market.options.trades``, ``market.futures.trades``, ``market.futures.mbp10``, ``market.crypto.trades``,
``market.crypto.quotes``, ``market.crypto.book``, ``market.<class>.bars`` (see ``shapes.subject_for``).
The same subjects and payload schema serve live and replayed data; only ``event_source`` differs.

Payload: JSON of ``normalize.avro.to_json_dict`` (all canonical fields; amounts as exact decimal strings,
timestamps as int ns, ``"schema"`` = record type) plus ``event_source`` (vendor id, or ``replay``).

Stream: subjects ``market.>``, 24 h ``max_age``, file storage, limits retention, duplicate window
``duplicate_window_s`` (default 20 min: the replay horizon within which a re-published record is
dropped as a duplicate), created or updated at start. Every message carries ``Nats-Msg-Id`` =
``shapes.msg_id`` (record type, source, stream, session, seq, sub_seq).

Publishing: ``publish_async`` for the whole batch (at most ``max_pending_acks`` outstanding), then all
acks are awaited together under ``ack_timeout_s``. Only then does the runtime ack the Kafka events. On a
timeout or error the whole batch is re-published after a backoff; JetStream drops the copies that had
been stored already (ack with ``duplicate=True``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
import nats
from nats.js import api as jsapi
from nats.js.errors import NotFoundError

from tickwire.bridges import metrics as m
from tickwire.bridges import shapes
from tickwire.bridges.config import NatsBridgeSettings
from tickwire.bridges.runtime import BridgeLoop, Item, make_app
from tickwire.logs import kv

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"


def stream_config(s: NatsBridgeSettings) -> jsapi.StreamConfig:
    return jsapi.StreamConfig(
        name=s.stream,
        subjects=[f"{s.subject_prefix}market.>"],
        retention=jsapi.RetentionPolicy.LIMITS,
        storage=jsapi.StorageType.FILE,
        max_age=s.max_age_s,
        duplicate_window=s.duplicate_window_s,
        discard=jsapi.DiscardPolicy.OLD,
    )


async def ensure_stream(js: Any, s: NatsBridgeSettings) -> None:
    """Create the stream, or bring an existing one to our config (idempotent)."""
    cfg = stream_config(s)
    try:
        await js.stream_info(s.stream)
    except NotFoundError:
        await js.add_stream(cfg)
        log.info("jetstream stream created %s", kv(stream=s.stream, subjects=cfg.subjects))
        return
    await js.update_stream(cfg)


class NatsWriter:
    def __init__(self, s: NatsBridgeSettings) -> None:
        self.s = s
        self.nc: Any = None
        self.js: Any = None
        self._pending: list[asyncio.Future[Any]] = []
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            if self.nc is None or self.nc.is_closed:
                # Bounded: with unlimited reconnects a first connect may otherwise wait forever.
                self.nc = await asyncio.wait_for(
                    nats.connect(
                        self.s.nats_url,
                        name=self.s.full_app_id,
                        connect_timeout=3,
                        allow_reconnect=True,
                        max_reconnect_attempts=-1,  # once connected, ride out outages of any length
                        reconnect_time_wait=0.5,
                    ),
                    timeout=10,
                )
                self.js = self.nc.jetstream(
                    publish_async_max_pending=self.s.max_pending_acks, timeout=self.s.ack_timeout_s
                )
            await ensure_stream(self.js, self.s)

    async def write(self, items: list[Item]) -> int:
        js, prefix, t = self.js, self.s.subject_prefix, self.s.ack_timeout_s
        pending = self._pending = []
        for it in items:
            rec = it.record
            fut = await js.publish_async(
                shapes.subject_for(rec, prefix),
                shapes.nats_payload(rec),
                wait_stall=t,
                headers={MSG_ID: shapes.msg_id(rec)},
            )
            pending.append(fut)
        acks = await asyncio.wait_for(asyncio.gather(*pending), timeout=t)
        self._pending = []
        dups = sum(1 for a in acks if a.duplicate)
        if dups:
            m.DUPLICATES.labels("nats").inc(dups)
        return len(items) - dups

    async def reset(self) -> None:
        # Cancelling releases the client's pending-ack slots; a late ack for a stored message is ignored,
        # the retry's duplicate is dropped by JetStream.
        for fut in self._pending:
            if not fut.done():
                fut.cancel()
        self._pending = []

    async def stop(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.drain()


def build(s: NatsBridgeSettings) -> faust.App:
    app = make_app(s)
    writer = NatsWriter(s)
    BridgeLoop(app, s, "nats", writer).register()

    async def _init() -> None:
        # Create the stream at start, before the first record (retried by the agent if NATS is down).
        try:
            await writer.start()
        except Exception as exc:
            log.warning("nats not reachable at start %s", kv(url=s.nats_url, error=exc))

    app.task(_init)
    return app
