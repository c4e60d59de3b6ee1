"""NATS bridge: canonical records -> JetStream stream ``MARKET_DATA`` (seed 003 subjects).

Subjects ``market.<class>.<kind>``: ``market.stocks.trades``, ``market.stocks.quotes``,
``market.options.trades``, ``market.futures.trades``, ``market.futures.mbp10``, ``market.crypto.trades``,
``market.crypto.quotes``, ``market.crypto.book``, ``market.<class>.bars`` (see ``shapes.subject_for``).
The same subjects and payload schema serve live and replayed data; only ``event_source`` differs.

Payload: JSON of ``tickwire.contract.codec.to_json_dict`` (all canonical fields; amounts as exact decimal
strings, timestamps as int ns, ``"schema"`` = record type) plus ``event_source`` (vendor id, or ``replay``).

Stream: subjects ``market.>``, 24 h ``max_age``, file storage, limits retention, duplicate window
``duplicate_window_s`` (default 20 min: the replay horizon within which a re-published record is
dropped as a duplicate), created or updated at start. Every message carries ``Nats-Msg-Id`` =
``shapes.msg_id`` (record type, source, stream, session, seq, sub_seq).

Live path: the bridge reads canonical records uncommitted (no wait for the normalizer's transactions);
a record of a transaction the normalizer aborts was published already, and its re-produced copy (same
identity, same ``Nats-Msg-Id``) is dropped by JetStream within ``duplicate_window_s``.

Publishing: the whole batch goes out as core-NATS publishes (public ``publish`` API) with a reply subject
each, queued without yielding so they leave in few socket writes,
then all PubAcks are awaited together under ``ack_timeout_s``. Only then may the runtime commit the Kafka
offsets. On a timeout or error the whole batch is re-published after a backoff; JetStream drops the
copies that had been stored already (ack with ``duplicate=True``). A refusal no retry cures (a full
stream with ``discard="new"`` and ``max_bytes``, an oversized message) raises ``PermanentWriteError`` for
the refused messages only: after ``permanent_error_attempts`` they go to ``bridge.nats.dlq``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any, cast

import nats
import orjson
from nats.js import api as jsapi
from nats.js.errors import NotFoundError

from tickwire.bridges import metrics as m
from tickwire.bridges import shapes
from tickwire.bridges.batch import BridgeLoop, Item, Market, PermanentWriteError
from tickwire.bridges.config import NatsBridgeSettings
from tickwire.logs import kv
from tickwire.runtime.sink import SinkWorker

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
        max_bytes=s.max_bytes,
        discard=jsapi.DiscardPolicy.NEW if s.discard == "new" else jsapi.DiscardPolicy.OLD,
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


class _Batch:
    """Acks outstanding for one publish attempt (reply subjects still unanswered)."""

    __slots__ = ("done", "dups", "error", "full", "outstanding")

    def __init__(self) -> None:
        self.outstanding: set[str] = set()
        self.dups = 0
        self.error: str | None = None
        self.full: dict[str, tuple[str, str]] = {}  # reply subject -> permanent refusal (reason, text)
        self.done = asyncio.Event()


class NatsWriter:
    """Publishes a batch as core-NATS messages with a reply subject each (what ``publish_async`` does, minus
    its per-message future and task): the whole batch is queued without yielding and flushed together;
    one wildcard subscription collects the PubAcks."""

    def __init__(self, s: NatsBridgeSettings) -> None:
        self.s = s
        self.nc: Any = None
        self.js: Any = None
        self._inbox = ""
        self._seq = 0
        self._batch: _Batch | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            if self.nc is None or self.nc.is_closed:
                # Bounded: with unlimited reconnects a first connect may otherwise wait forever.
                self.nc = await asyncio.wait_for(
                    nats.connect(
                        self.s.nats_url.get_secret_value(),
                        tls=ssl.create_default_context(cafile=self.s.tls_ca_file)
                        if self.s.tls_ca_file
                        else None,
                        name=self.s.full_app_id,
                        connect_timeout=3,
                        allow_reconnect=True,
                        max_reconnect_attempts=-1,  # once connected, ride out outages of any length
                        reconnect_time_wait=0.5,
                        # A whole batch is queued before the one flush; 2 MiB (default) would force
                        # mid-batch flushes. Our subjects are built from fixed parts: skip validation.
                        pending_size=256 * 1024 * 1024,
                        skip_subject_validation=True,
                    ),
                    timeout=10,
                )
                self.js = self.nc.jetstream(timeout=self.s.ack_timeout_s)
                self._inbox = self.nc.new_inbox()
                await self.nc.subscribe(f"{self._inbox}.>", cb=self._on_ack, pending_msgs_limit=-1)
            await ensure_stream(self.js, self.s)

    async def _on_ack(self, msg: Any) -> None:
        b = self._batch
        if b is None or msg.subject not in b.outstanding:
            return  # a late ack of an attempt given up on: its retry is deduplicated by JetStream
        b.outstanding.discard(msg.subject)
        try:
            ack = orjson.loads(msg.data) if msg.data else {"error": {"description": "no responders"}}
        except orjson.JSONDecodeError:
            ack = {"error": {"description": f"bad ack {msg.data[:100]!r}"}}
        if "error" in ack:
            err = ack["error"]
            text = str(err.get("description", err) if isinstance(err, dict) else err)
            reason = _permanent(text)
            if reason is not None:
                b.full[msg.subject] = (reason, text)  # the other acks tell which messages were stored
            else:
                b.error = text
                b.done.set()
        elif ack.get("duplicate"):
            b.dups += 1
        if not b.outstanding:
            b.done.set()

    async def write(self, items: list[Item]) -> int:
        if not items:
            return 0
        nc, prefix = self.nc, self.s.subject_prefix
        self._seq += 1
        reply_prefix = f"{self._inbox}.{self._seq}."
        b = self._batch = _Batch()
        subject_for, payload, msg_id = shapes.subject_for, shapes.nats_payload, shapes.msg_id
        outstanding = b.outstanding
        publish = nc.publish
        for i, it in enumerate(items):
            rec = cast(Market, it.record)  # batch.decode hands this bridge market records only
            reply = reply_prefix + str(i)
            outstanding.add(reply)
            # Does not yield: the command is appended to the client's buffer, flushed once we wait.
            await publish(subject_for(rec, prefix), payload(rec), reply=reply, headers={MSG_ID: msg_id(rec)})
        try:
            await asyncio.wait_for(b.done.wait(), timeout=self.s.ack_timeout_s)
        finally:
            self._batch = None
        if b.error is not None:
            raise PublishError(f"jetstream refused a message: {b.error}")
        if b.full:
            # The stream refused these (discard new, limits reached); the rest were stored (acked).
            refused = [items[int(subject.rpartition(".")[2])] for subject in b.full]
            reason, text = next(iter(b.full.values()))
            raise PermanentWriteError(
                reason, f"jetstream stream {self.s.stream} refused: {text}", refused, (self.s.stream,)
            )
        if b.dups:
            m.DUPLICATES.labels("nats").inc(b.dups)
        return len(items) - b.dups

    async def reset(self) -> None:
        # Acks still in flight for the abandoned attempt are ignored; its retry is deduplicated.
        self._batch = None

    async def stop(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.drain()


def _permanent(description: str) -> str | None:
    """The reason of a JetStream refusal no retry cures by itself, else None. A full stream (discard
    new): "maximum messages/bytes exceeded" (and per subject), "insufficient resources" (the server's
    storage limit); a message over the stream's size limit: "message size exceeds maximum allowed"."""
    d = description.lower()
    if ("maximum" in d and "exceeded" in d) or "insufficient resources" in d:
        return "stream_full"
    if "message size exceeds maximum" in d:
        return "too_large"
    return None


class PublishError(RuntimeError):
    """JetStream answered a publish with an error (retried as a whole batch)."""


def build(s: NatsBridgeSettings) -> SinkWorker:
    """The NATS bridge: sink loop + writer; the stream is created at start (retried by the batches)."""
    writer = NatsWriter(s)
    loop = BridgeLoop(s, "nats", writer)

    # The stream is created at start; if NATS is down the first batch's retries keep trying.
    return SinkWorker(loop.sink_config(), loop.handle, on_start=loop.start, on_stop=loop.close)
