"""The raw record contract shared by producers (write) and the normalizer (read).

A raw Kafka record's value is the vendor payload exactly as received; its headers carry the envelope.
Header values are ASCII bytes. Keep this module free of vendor names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

H_SOURCE = "tw-source"  # vendor id, e.g. a key of the parser registry
H_STREAM = "tw-stream"  # stream / connection id within the source, e.g. "stocks.iex"
H_SESSION = "tw-session"  # producer session id: its start time in ns; seq restarts only with a new session
H_SEQ = "tw-seq"  # per (source, stream, session) sequence number, gap-free, starts at 1
H_TS_RECV = "tw-ts-recv"  # integer ns since the Unix epoch, taken at socket read
H_CONTENT_TYPE = "tw-content-type"  # json | msgpack | fix | dbn | text
H_VERSION = "tw-version"  # producer version

CONTENT_TYPES = frozenset({"json", "msgpack", "fix", "dbn", "text"})

# DLQ headers added to the original record's headers.
H_ERROR_CLASS = "tw-error-class"
H_ERROR_MESSAGE = "tw-error-message"
H_SRC_TOPIC = "tw-src-topic"
H_SRC_PARTITION = "tw-src-partition"
H_SRC_OFFSET = "tw-src-offset"

Headers = Sequence[tuple[str, bytes | None]]


class EnvelopeError(ValueError):
    """A raw record's headers are missing or malformed."""


@dataclass(frozen=True, slots=True)
class Envelope:
    source: str
    stream: str
    session: int
    seq: int
    ts_recv: int
    content_type: str
    version: str = ""

    def to_headers(self) -> list[tuple[str, bytes]]:
        return [
            (H_SOURCE, self.source.encode()),
            (H_STREAM, self.stream.encode()),
            (H_SESSION, str(self.session).encode()),
            (H_SEQ, str(self.seq).encode()),
            (H_TS_RECV, str(self.ts_recv).encode()),
            (H_CONTENT_TYPE, self.content_type.encode()),
            (H_VERSION, self.version.encode()),
        ]

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes | None]] | None) -> Envelope:
        h = {k: v for k, v in (headers or ()) if v is not None}
        try:
            return cls(
                source=h[H_SOURCE].decode(),
                stream=h[H_STREAM].decode(),
                session=int(h[H_SESSION]),
                seq=int(h[H_SEQ]),
                ts_recv=int(h[H_TS_RECV]),
                content_type=h[H_CONTENT_TYPE].decode(),
                version=h.get(H_VERSION, b"").decode(),
            )
        except KeyError as exc:
            raise EnvelopeError(f"missing raw header {exc.args[0]!r}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise EnvelopeError(f"malformed raw header: {exc}") from None

    @property
    def dedupe_key(self) -> tuple[str, str, int, int]:
        return (self.source, self.stream, self.session, self.seq)
