"""The normalizer's per-partition state: the store protocol, an in-memory store, parser-state snapshots.

The pipeline keeps one store per raw *partition* (the stream runtime's ``PartitionState``, backed by that
partition's changelog; a ``MemoryStore`` offline and in tests). The partition is where a key lives, so
keys name only what they are about: ``o`` (last offset), ``d|source|stream|session`` (dedupe cursor),
``w|source`` / ``b|source|symbol`` (bar watermark / open bars), ``m|source|symbol`` / ``n|source|symbol``
(5 s -> 1 min rollup / NBBO, ``derive``), ``p|source`` (parser state snapshot).

Parser state (book continuity, symbol metadata, vendor sequences) is scoped per raw partition too and
snapshotted into the store at each commit (``Pipeline.checkpoint``): an aborted cycle or a restart
resumes from exactly the parser state that goes with the committed offsets, so exactly-once output
does not depend on when a worker died or which worker owns the partition. Snapshots are pickles of
the parsers' own state classes, read back only by the normalizer; one that no longer unpickles (a
changed state class after an upgrade) is replaced by a fresh state, with a warning.
"""

from __future__ import annotations

import logging
import pickle
from typing import Any, Protocol

from tickwire.logs import kv

log = logging.getLogger(__name__)


class PartitionStore(Protocol):
    def get(self, key: bytes, default: bytes | None = None) -> bytes | None: ...
    def put(self, key: bytes, value: bytes) -> None: ...
    def delete(self, key: bytes) -> None: ...
    def items(self, prefix: bytes = b"") -> list[tuple[bytes, bytes]]: ...


class MemoryStore:
    """A ``PartitionStore`` over a dict (offline normalization, tests)."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        return self.data.get(key, default)

    def put(self, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def delete(self, key: bytes) -> None:
        self.data.pop(key, None)

    def items(self, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        return [(k, v) for k, v in self.data.items() if k.startswith(prefix)]


def parser_key(source: str) -> bytes:
    return b"p|" + source.encode()


def dump_parser_state(state: Any) -> bytes:
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def load_parser_state(raw: bytes, source: str) -> Any | None:
    """The snapshot's state, or None when it cannot be read (the caller starts a fresh one)."""
    try:
        return pickle.loads(raw)
    except Exception as exc:  # an incompatible snapshot must not stop the partition
        log.warning("parser state snapshot unreadable, starting fresh %s", kv(source=source, error=exc))
        return None
