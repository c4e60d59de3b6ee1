"""The one connection runner: connect -> handshake -> subscribe -> read, forever.

Vendor specifics come from an adapter object (see ``VendorAdapter``); this module names no vendor. The
connection is a WebSocket (``WsLink``) unless the adapter brings its own transport (``LinkAdapter``).
Every frame received is published to ``<source>.raw`` byte-for-byte with an envelope whose seq is a
per-stream counter that lives as long as the process, so reconnects never reuse a seq; a reconnect
emits one ``Gap`` record. Retryable failures are retried forever with capped, fully jittered backoff.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tickwire import __version__
from tickwire.backoff import Backoff
from tickwire.contract.adapter import (
    AuthError,
    Frame,
    Link,
    RetryableVendorError,
    StaleConnection,
    Subs,
    SymbolLimitError,
    VendorAdapter,
    VendorWarning,
    diff_subs,
    fmt_subs,
)
from tickwire.contract.records import Gap
from tickwire.contract.settings import IngestSettings
from tickwire.ingest import health
from tickwire.ingest.producer import EXIT_FATAL, FatalProducerError, RawProducer
from tickwire.ingest.publisher import RawPublisher
from tickwire.ingest.ws_link import WsLink
from tickwire.logs import kv

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    last_seq: int | None
    ts_start: int
    detail: str


class Runner:
    def __init__(
        self,
        adapter: VendorAdapter,
        producer: RawProducer,
        settings: IngestSettings,
        *,
        subs: Subs,
        encode: Callable[[Any], bytes],
        session: int | None = None,
        rest_get: Callable[[str, float], bytes] | None = None,
    ) -> None:
        self.adapter = adapter
        self.producer = producer
        self.s = settings
        self.backoff = Backoff(settings.backoff_initial_s, settings.backoff_max_s, settings.healthy_reset_s)
        self.out = RawPublisher(
            producer, settings, adapter.source, adapter.content_type, encode=encode, session=session
        )
        self.session = self.out.session
        self._rest_get = rest_get or _http_get
        self.raw_topic = self.out.raw_topic
        self._desired: Subs = {t: frozenset(v) for t, v in subs.items()}
        self._active: Subs = {}  # what the open connection is subscribed to
        self._desired_lock = threading.Lock()
        self._desired_changed = threading.Event()
        self._stop = threading.Event()
        self._link: Link | None = None
        self._trim_to_ack = False
        self._gap: _Pending | None = None
        self.last_data_ns: int | None = None
        self.last_frame_ns: int | None = None
        self._last_any = time.monotonic()
        self._last_data_mono = time.monotonic()
        self.connections = 0  # connection attempts, for tests and stats
        self.reconnects = 0
        self.ready = threading.Event()  # set once subscribed (tests wait on it)
        health.SCRAPE.track_last(adapter.source, adapter.stream, lambda: self.last_data_ns)

    # -- subscriptions --

    @property
    def desired(self) -> Subs:
        with self._desired_lock:
            return dict(self._desired)

    def set_desired(self, stream_type: str, symbols: frozenset[str]) -> None:
        """Called from the control-topic follower thread; applied by the read loop without reconnecting."""
        with self._desired_lock:
            self._desired[stream_type] = frozenset(symbols)
        self._desired_changed.set()

    def _apply_desired(self, link: Link) -> None:
        self._desired_changed.clear()
        desired = self.desired
        added, removed = diff_subs(desired, self._active)
        if removed:
            for f in self.adapter.unsubscribe_frames(removed):
                link.send(f)
        if added:
            if not self._active:  # data was not expected until now
                self._last_data_mono = time.monotonic()
            for f in self.adapter.subscribe_frames(added):
                link.send(f)
            self._start_rest(added, reconnected=False)
        if added or removed:
            log.info(
                "subscriptions changed live %s",
                kv(stream=self.adapter.stream, added=fmt_subs(added), removed=fmt_subs(removed)),
            )
        self._active = {t: s for t, s in desired.items() if s}
        self._gauge_subs()

    def _gauge_session(self) -> None:
        stats = getattr(self.adapter, "session_stats", None)
        if stats is not None:
            for name, value in stats().items():
                health.SESSION.labels(self.adapter.source, self.adapter.stream, name).set(value)

    def _gauge_subs(self) -> None:
        for t, s in self._active.items():
            health.SUBSCRIBED.labels(self.adapter.source, self.adapter.stream, t).set(len(s))

    # -- publishing --

    def next_seq(self, stream: str) -> int:
        return self.out.next_seq(stream)

    def seq(self, stream: str) -> int:
        """The last seq published on ``stream`` (0 before the first)."""
        return self.out.last_seq(stream) or 0

    def publish(
        self,
        frame: bytes,
        ts_recv: int,
        *,
        stream: str | None = None,
        key: str | None = None,
        content_type: str | None = None,
        extra_headers: list[tuple[str, bytes]] | None = None,
        broadcast: bool = False,
    ) -> int:
        """Publish one received payload; returns its seq (``broadcast``: see ``RawPublisher.publish``)."""
        stream = stream or self.adapter.stream
        if key is None and stream == self.adapter.stream:
            try:
                key = self.adapter.classify(frame)
            except Exception:  # malformed frames are still published raw, keyed by stream
                key = None
        return self.out.publish(
            frame,
            ts_recv,
            stream=stream,
            key=key,
            content_type=content_type,
            extra_headers=extra_headers,
            broadcast=broadcast,
        )

    def report_gap(self, gap: Gap) -> None:
        """A Gap the link detected itself (e.g. a vendor sequence jump in its session layer)."""
        self.out.gap(
            gap.stream,
            gap.last_seq_before,
            gap.first_seq_after,
            gap.ts_start,
            gap.ts_end,
            gap.detail,
            reason=gap.reason,
        )

    def _emit_gap(self, first_seq_after: int | None, ts_end: int) -> None:
        g, self._gap = self._gap, None
        if g is not None:
            self.out.gap(self.adapter.stream, g.last_seq, first_seq_after, g.ts_start, ts_end, g.detail)

    def _start_rest(self, added: Subs, *, reconnected: bool) -> None:
        reqs = self.adapter.rest_requests(added, reconnected)
        if reqs:
            threading.Thread(target=self._rest, args=(reqs,), name="rest", daemon=True).start()

    def _rest(self, reqs: list[tuple[str, str, str | None]]) -> None:
        for stream, url, key in reqs:
            for attempt in range(5):
                if self._stop.is_set():
                    return
                try:
                    body = self._rest_get(url, self.s.rest_timeout_s)
                    # An answer about no one symbol (exchangeInfo, products) is reference data for all.
                    self.publish(
                        body,
                        time.time_ns(),
                        stream=stream,
                        key=key,
                        content_type="json",
                        broadcast=key is None,
                    )
                    break
                except Exception as exc:
                    log.warning("REST fetch failed %s", kv(stream=stream, attempt=attempt + 1, error=exc))
                    self._stop.wait(min(30.0, 2.0**attempt))

    # -- connection loop --

    def stop(self) -> None:
        self._stop.set()
        link = self._link
        if link is not None:
            with contextlib.suppress(Exception):
                link.abort()

    def run(self) -> int:
        """Run until ``stop()`` (0), a fatal vendor error (2) or a fatal producer error (``EXIT_FATAL``)."""
        while not self._stop.is_set():
            hint: float | None = None
            reason = "error"
            started = time.monotonic()
            try:
                self._session()
                reason = "closed"
            except AuthError as exc:
                log.error("authentication rejected, stopping %s", kv(stream=self.adapter.stream, error=exc))
                self._finish()
                return 2
            except FatalProducerError as exc:
                log.critical("fatal producer error, stopping %s", kv(stream=self.adapter.stream, error=exc))
                return EXIT_FATAL  # the link is closed by the finally below
            except RetryableVendorError as exc:
                hint, reason = exc.backoff_hint, "vendor"
                log.warning(
                    "vendor error, backing off %s", kv(stream=self.adapter.stream, error=exc, hint=hint)
                )
            except StaleConnection as exc:
                reason = "stale"
                health.STALE_RECONNECTS.labels(self.adapter.source, self.adapter.stream).inc()
                log.warning("stale connection %s", kv(stream=self.adapter.stream, detail=exc))
            except Exception as exc:
                if self._stop.is_set():
                    break
                log.warning("connection lost %s", kv(stream=self.adapter.stream, error=repr(exc)))
            finally:
                self._close_link(reason)
            if self._stop.is_set():
                break
            if self._was_healthy(started):
                self.backoff.reset()
            delay = self.backoff.next_delay()
            if hint is not None:  # the vendor said how long (e.g. its connection limit): obey it
                delay = hint
            self.reconnects += 1
            health.RECONNECTS.labels(self.adapter.source, self.adapter.stream, reason).inc()
            log.info(
                "reconnecting %s",
                kv(stream=self.adapter.stream, delay=f"{delay:.2f}", attempt=self.backoff.attempt),
            )
            self._stop.wait(delay)
        self._finish()
        return 0

    def _was_healthy(self, started: float) -> bool:
        return (time.monotonic() - started) >= self.s.healthy_reset_s and self.last_data_ns is not None

    def _finish(self) -> None:
        if self._gap is not None:
            self._emit_gap(None, time.time_ns())
        health.CONNECTED.labels(self.adapter.source, self.adapter.stream).set(0)

    def _close_link(self, reason: str = "error") -> None:
        health.CONNECTED.labels(self.adapter.source, self.adapter.stream).set(0)
        self.ready.clear()
        link, self._link = self._link, None
        if link is not None:
            with contextlib.suppress(Exception):
                for r in link.close():  # e.g. messages that arrived before a logout's confirm
                    self.publish(r.payload, r.ts_recv, extra_headers=list(r.headers))
        self._gauge_session()
        last = self.out.last_seq(self.adapter.stream)
        # Nothing received yet: nothing missed. A deliberate stop ends the stream; it is no gap.
        if last is not None and self._gap is None and not self._stop.is_set():
            self._gap = _Pending(last, self.last_frame_ns or time.time_ns(), f"connection lost ({reason})")
        self._active = {}

    def _recv(self, link: Link, timeout: float) -> list[bytes]:
        """The payloads read, each published; [] on timeout or transport-only traffic (pings)."""
        items = link.recv(timeout)
        if items is None:
            return []
        self.last_frame_ns = items[-1].ts_recv if items else time.time_ns()
        self._last_any = time.monotonic()
        for r in items:
            seq = self.publish(
                r.payload, r.ts_recv, key=r.key, extra_headers=list(r.headers), broadcast=r.broadcast
            )
            if self._gap is not None:
                self._emit_gap(seq, r.ts_recv)
        return [r.payload for r in items]

    def _check(self, data: bytes) -> None:
        try:
            acked = self.adapter.check(data)
        except SymbolLimitError as exc:
            log.error("symbol limit: dropping excess symbols %s", kv(stream=self.adapter.stream, error=exc))
            self._trim_to_ack = True
            return
        except VendorWarning as exc:
            log.error(
                "vendor rejected part of the subscription %s", kv(stream=self.adapter.stream, error=exc)
            )
            return
        if acked is not None and self._trim_to_ack:
            # Keep what the vendor accepted so reconnects do not resubscribe the rejected excess.
            self._trim_to_ack = False
            with self._desired_lock:
                self._desired = {t: acked.get(t, frozenset()) for t in self._desired}
            self._active = {t: s for t, s in acked.items() if s}

    def _session(self) -> None:
        self.connections += 1
        subs = self.desired
        url = self.adapter.url(subs)
        log.info("connecting %s", kv(stream=self.adapter.stream, url=url, attempt=self.connections))
        open_link = getattr(self.adapter, "open_link", None)
        link: Link
        if open_link is not None:  # the adapter's own transport (LinkAdapter)
            link = open_link(url, self.s.connect_timeout_s, self.report_gap)
        else:
            link = WsLink(url, self.s.connect_timeout_s, self.adapter.http_headers())
        self._link = link
        runner = self
        early: list[bytes] = []

        class _Conn:
            def send(self, data: Frame) -> None:
                link.send(data)

            def recv(self, timeout: float) -> bytes:
                deadline = time.monotonic() + timeout
                while not early:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise RetryableVendorError("handshake timed out")
                    early.extend(runner._recv(link, left))
                return early.pop(0)

        self.adapter.handshake(_Conn())
        health.CONNECTED.labels(self.adapter.source, self.adapter.stream).set(1)
        reconnected = self.connections > 1
        self._desired_changed.clear()
        subs = {t: s for t, s in self.desired.items() if s}
        for f in self.adapter.subscribe_frames(subs):
            _Conn().send(f)
        self._active = subs
        self._gauge_subs()
        self._start_rest(subs, reconnected=reconnected)
        self.ready.set()
        now = time.monotonic()
        last_ping = last_stats = self._last_any = self._last_data_mono = now
        while not self._stop.is_set():
            self.producer.check_fatal()  # also while no frame arrives (the heartbeat polls the producer)
            if self._desired_changed.is_set():
                self._apply_desired(link)
            received = self._recv(link, 0.25)
            now = time.monotonic()
            for data in received:
                self._check(data)
                if self.adapter.is_data(data):
                    self._last_data_mono = now
                    self.last_data_ns = self.last_frame_ns
            quiet = now - self._last_data_mono
            if self._active and quiet > self.s.stale_after_s:
                raise StaleConnection(f"no data for {quiet:.1f}s")
            if now - self._last_any > self.s.ping_interval_s + self.s.ping_timeout_s:
                raise ConnectionError("no frames or pongs: connection dead")
            if now - last_ping >= self.s.ping_interval_s:
                link.ping()
                last_ping = now
            if now - last_stats >= 1.0:
                self._gauge_session()
                last_stats = now


def _http_get(url: str, timeout: float) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": f"tickwire/{__version__}"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body: bytes = resp.read()
        return body
