"""The vendor-facing side of a producer: what a vendor adapter gives the one reconnect runner.

An adapter connects, authenticates, subscribes and classifies frames; it never publishes. Its errors tell
the runner what to do: ``AuthError`` stops the process (exit 2, no retry storm), ``RetryableVendorError``
reconnects after the vendor's hint, ``SymbolLimitError`` keeps what was accepted, ``VendorWarning`` logs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from tickwire.contract.records import Gap

Subs = dict[str, frozenset[str]]  # stream_type -> symbols
Frame = str | bytes


class ConfigError(Exception):
    """A producer cannot start with these settings (e.g. credentials missing for a real endpoint): exit 2."""


class AuthError(Exception):
    """Credentials rejected: fatal, the process stops with a non-zero exit."""


class RetryableVendorError(Exception):
    """The vendor asks us to go away for a while (e.g. connection limit): reconnect after the hint."""

    def __init__(self, message: str, backoff_hint: float | None = None) -> None:
        super().__init__(message)
        self.backoff_hint = backoff_hint


class SymbolLimitError(Exception):
    """Too many symbols: keep running with what the vendor accepted (its next ack says which)."""


class VendorWarning(Exception):
    """A vendor error that affects part of the subscription only: log it and keep going."""


class StaleConnection(Exception):
    pass


class Conn(Protocol):
    def send(self, data: Frame) -> None: ...
    def recv(self, timeout: float) -> bytes: ...


class VendorAdapter(Protocol):
    source: str  # raw topic prefix and envelope source
    stream: str  # envelope stream id of the WebSocket frames
    content_type: str
    control_vendor: str  # vendor part of the control.subscriptions key

    def url(self, subs: Subs) -> str: ...
    def http_headers(self) -> list[str]: ...
    def handshake(self, conn: Conn) -> None: ...
    def subscribe_frames(self, subs: Subs) -> list[Frame]: ...
    def unsubscribe_frames(self, subs: Subs) -> list[Frame]: ...
    def classify(self, frame: bytes) -> str | None: ...
    def is_data(self, frame: bytes) -> bool: ...
    def check(self, frame: bytes) -> Subs | None:
        """Raise the vendor error ``frame`` carries; return the acknowledged subscriptions of an ack."""
        ...

    def rest_requests(self, added: Subs, reconnected: bool) -> list[tuple[str, str, str | None]]:
        """(stream, url, key symbol) REST side fetches to publish after subscribing ``added``."""
        ...


@dataclass(frozen=True, slots=True)
class Received:
    """One vendor message a link read, to be published raw."""

    payload: bytes
    ts_recv: int  # ns, taken at the socket read
    headers: tuple[tuple[str, bytes], ...] = ()  # extra raw headers (e.g. the vendor's own sequence number)
    key: str | None = None  # the raw record key when the link knows it (else the adapter's ``classify``)
    broadcast: bool = False  # every raw partition gets a copy (see ``RawPublisher.publish``)


class Link(Protocol):
    """One open connection of the runner. The default is a WebSocket; an adapter with ``open_link``
    (``LinkAdapter``) brings its own transport, e.g. a TCP session protocol that owns its heartbeats and
    sequence numbers."""

    def recv(self, timeout: float) -> list[Received] | None:
        """Messages to publish; ``[]`` when only transport traffic arrived (pings, heartbeats); ``None``
        when nothing arrived within ``timeout``. Raises ``ConnectionError`` when the connection is gone."""
        ...

    def send(self, data: Frame) -> None: ...
    def ping(self) -> None: ...

    def close(self) -> list[Received]:
        """Graceful close (a WebSocket close frame, a session logout and its confirm); returns what
        arrived meanwhile, to be published like any other message."""
        ...

    def abort(self) -> None:
        """From another thread: make a blocked ``recv`` return soon."""
        ...


class LinkAdapter(VendorAdapter, Protocol):
    def open_link(self, url: str, timeout: float, report_gap: Callable[[Gap], None]) -> Link:
        """Connect and authenticate; ``report_gap`` publishes a Gap the transport detected itself."""
        ...

    def session_stats(self) -> dict[str, float]:
        """Numbers of its session layer for metrics and the live view: ``logged_on`` (0/1), ``seq_in``,
        ``seq_out``, ``heartbeat_age_s``, ``rejects`` (requests the vendor refused)."""
        ...


def diff_subs(new: Subs, old: Subs) -> tuple[Subs, Subs]:
    """(added, removed) per stream type, empty types omitted."""
    added = {t: s - old.get(t, frozenset()) for t, s in new.items()}
    removed = {t: s - new.get(t, frozenset()) for t, s in old.items()}
    return {t: s for t, s in added.items() if s}, {t: s for t, s in removed.items() if s}


def fmt_subs(subs: Subs) -> str:
    """``type=SYM,SYM;type=...`` (sorted) for logs."""
    return ";".join(f"{t}={','.join(sorted(s))}" for t, s in sorted(subs.items()))


class RawSink(Protocol):
    """Where producers put raw records: the one producer wrapper (``tickwire.ingest.producer``) is one.
    Vendor code receives a sink (or a factory of sinks) instead of importing the ingest stage."""

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        *,
        stream: str | None = None,
        partition: int | None = None,
    ) -> bool: ...

    def poll(self, timeout: float = 0.0) -> int: ...

    def flush(self, timeout: float = 30.0) -> int: ...


# (bootstrap servers, client id, local queue bound in kB) -> a sink
SinkFactory = Callable[[str, str, int], RawSink]
