"""The raw record contract shared by producers (write) and the normalizer (read).

A raw Kafka record's value is the vendor payload exactly as received; its headers carry the envelope.
Header values are ASCII bytes. Keep this module free of vendor names.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping, Sequence

import msgspec

H_SOURCE = "tw-source"  # vendor id, e.g. a key of the parser registry
H_STREAM = "tw-stream"  # stream / connection id within the source, e.g. "stocks.iex"
H_SESSION = "tw-session"  # producer session id: its start time in ns; seq restarts only with a new session
H_SEQ = "tw-seq"  # per (source, stream, session) sequence number, gap-free, starts at 1
H_TS_RECV = "tw-ts-recv"  # integer ns since the Unix epoch, taken at socket read
H_CONTENT_TYPE = "tw-content-type"  # json | msgpack | fix | dbn | tws | text
H_VERSION = "tw-version"  # producer version
# Optional: the vendor's own sequence number of the message when its protocol has one (e.g. FIX 34).
H_VENDOR_SEQ = "tw-vendor-seq"
# Optional: the request a reply answers, when the payload alone does not say (a TWS reqId's symbol,
# exchange and kind; a REST call's function and parameters, never credentials). ASCII
# ``key=value`` pairs joined by ``&`` (URL query encoding): `context_header` / `Envelope.context_map`.
H_CONTEXT = "tw-context"
# The context ``kind`` of a producer's end-of-session marker: an empty ``text`` payload on every partition
# of its raw topic after a clean stop (SIGTERM), the last record of that session. The normalizer closes
# what only a later record would have closed (the open minute of vendor bars) instead of parsing it.
SESSION_END = "session_end"

# tws: one TWS API message, its NUL-terminated fields as received (the 4-byte length prefix removed).
CONTENT_TYPES = frozenset({"json", "msgpack", "fix", "dbn", "tws", "text"})

# DLQ headers added to the original record's headers.
H_ERROR_CLASS = "tw-error-class"
H_ERROR_MESSAGE = "tw-error-message"
H_SRC_TOPIC = "tw-src-topic"
H_SRC_PARTITION = "tw-src-partition"
H_SRC_OFFSET = "tw-src-offset"
H_ERROR_KIND = "tw-error-kind"  # tickwire.contract.errors.Kind: bad_input or internal

Headers = Sequence[tuple[str, bytes | None]]


class EnvelopeError(ValueError):
    """A raw record's headers are missing or malformed."""


class Envelope(msgspec.Struct, frozen=True):
    """Why a Struct: it is built once per raw record on the normalizer's hot path (~1 µs vs ~2 µs for a
    frozen dataclass)."""

    source: str
    stream: str
    session: int
    seq: int
    ts_recv: int
    content_type: str
    version: str = ""
    context: str = ""  # H_CONTEXT, "" when absent

    def to_headers(self) -> list[tuple[str, bytes]]:
        return [
            (H_SOURCE, self.source.encode()),
            (H_STREAM, self.stream.encode()),
            (H_SESSION, str(self.session).encode()),
            (H_SEQ, str(self.seq).encode()),
            (H_TS_RECV, str(self.ts_recv).encode()),
            (H_CONTENT_TYPE, self.content_type.encode()),
            (H_VERSION, self.version.encode()),
            *([(H_CONTEXT, self.context.encode())] if self.context else []),
        ]

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes | None]] | None) -> Envelope:
        return cls.from_map(dict(headers or ()))

    @classmethod
    def from_map(cls, h: Mapping[str, bytes | None]) -> Envelope:
        """From the headers as a dict (a caller that reads other headers too builds it once)."""
        try:
            version = h.get(H_VERSION)
            context = h.get(H_CONTEXT)
            return cls(
                h[H_SOURCE].decode(),  # type: ignore[union-attr]
                h[H_STREAM].decode(),  # type: ignore[union-attr]
                int(h[H_SESSION]),  # type: ignore[arg-type]
                int(h[H_SEQ]),  # type: ignore[arg-type]
                int(h[H_TS_RECV]),  # type: ignore[arg-type]
                h[H_CONTENT_TYPE].decode(),  # type: ignore[union-attr]
                version.decode() if version else "",
                context.decode() if context else "",
            )
        except KeyError as exc:
            raise EnvelopeError(f"missing raw header {exc.args[0]!r}") from None
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as exc:  # TypeError: a None value
            raise EnvelopeError(f"malformed raw header: {exc}") from None

    def context_map(self) -> dict[str, str]:
        """The request context as a dict (empty when the record has none)."""
        return dict(urllib.parse.parse_qsl(self.context, keep_blank_values=True)) if self.context else {}

    @property
    def dedupe_key(self) -> tuple[str, str, int, int]:
        return (self.source, self.stream, self.session, self.seq)


def context_header(fields: dict[str, str | int]) -> tuple[str, bytes]:
    """The H_CONTEXT header of a raw record for a request's context (keys in the order given)."""
    return (H_CONTEXT, urllib.parse.urlencode(fields).encode("ascii"))
