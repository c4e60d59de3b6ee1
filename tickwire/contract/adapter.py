"""The vendor-facing side of a producer: what a vendor adapter gives the one reconnect runner.

An adapter connects, authenticates, subscribes and classifies frames; it never publishes. Its errors tell
the runner what to do: ``AuthError`` stops the process (exit 2, no retry storm), ``RetryableVendorError``
reconnects after the vendor's hint, ``SymbolLimitError`` keeps what was accepted, ``VendorWarning`` logs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

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


def diff_subs(new: Subs, old: Subs) -> tuple[Subs, Subs]:
    """(added, removed) per stream type, empty types omitted."""
    added = {t: s - old.get(t, frozenset()) for t, s in new.items()}
    removed = {t: s - new.get(t, frozenset()) for t, s in old.items()}
    return {t: s for t, s in added.items() if s}, {t: s for t, s in removed.items() if s}


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
    ) -> bool: ...

    def poll(self, timeout: float = 0.0) -> int: ...

    def flush(self, timeout: float = 30.0) -> int: ...


# (bootstrap servers, client id, local queue bound in kB) -> a sink
SinkFactory = Callable[[str, str, int], RawSink]
