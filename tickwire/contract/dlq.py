"""DLQ records: the raw record untouched, its original headers, plus why and where it came from."""

from __future__ import annotations

from collections.abc import Mapping

from tickwire.contract.envelope import (
    H_ERROR_CLASS,
    H_ERROR_KIND,
    H_ERROR_MESSAGE,
    H_SRC_OFFSET,
    H_SRC_PARTITION,
    H_SRC_TOPIC,
    Headers,
)

MAX_MESSAGE = 2000  # bytes of error text kept in a header
_DLQ_HEADERS = frozenset(
    {H_ERROR_CLASS, H_ERROR_MESSAGE, H_ERROR_KIND, H_SRC_TOPIC, H_SRC_PARTITION, H_SRC_OFFSET}
)


def dlq_topic(src_topic: str) -> str:
    """``<source>.raw`` -> ``<source>.raw.dlq``; a topic of an unknown source gets ``<topic>.dlq`` too."""
    return src_topic + ".dlq"


def dlq_headers(
    headers: Headers,
    exc: BaseException,
    src_topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    kind: str | None = None,
) -> list[tuple[str, bytes]]:
    """The one DLQ header builder (normalizer, bridges, producers). Original headers first (minus stale
    DLQ headers when a DLQ record is itself re-fed), then why and, for a consumed record, where from.
    A producer's record that never reached Kafka (e.g. an oversized frame) has no source position."""
    out = [(k, v if v is not None else b"") for k, v in headers if k not in _DLQ_HEADERS]
    message = str(exc) or repr(exc)
    out += [
        (H_ERROR_CLASS, type(exc).__name__.encode()),
        (H_ERROR_MESSAGE, message.encode("utf-8", "replace")[:MAX_MESSAGE]),
    ]
    if kind is not None:  # tickwire.contract.errors.Kind
        out.append((H_ERROR_KIND, kind.encode()))
    if src_topic is not None:
        out.append((H_SRC_TOPIC, src_topic.encode()))
    if partition is not None and offset is not None:
        out += [(H_SRC_PARTITION, str(partition).encode()), (H_SRC_OFFSET, str(offset).encode())]
    return out


def replay_origin(headers: Headers | Mapping[str, bytes | None]) -> bytes | None:
    """``topic|partition|offset`` where a re-fed DLQ record was first consumed; None for other records."""
    h = headers if isinstance(headers, Mapping) else dict(headers)
    topic, part, off = h.get(H_SRC_TOPIC), h.get(H_SRC_PARTITION), h.get(H_SRC_OFFSET)
    if not (topic and part and off):
        return None
    return topic + b"|" + part + b"|" + off
