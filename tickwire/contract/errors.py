"""Error classification: the one place that decides what a failure means and therefore what happens.

Every per-message boundary (the normalizer's pipeline and processor, ``tickwire parse``, the bridges'
writers) catches ``BaseException`` — native extensions raise ``BaseException`` subclasses, e.g.
``pyo3_runtime.PanicException`` from a Rust decoder on a corrupt record — and asks :func:`classify`:

- ``exit``: ``KeyboardInterrupt``, ``SystemExit``, ``GeneratorExit``: never swallowed, re-raised.
- ``infra``: an outage of something we depend on (schema registry unreachable or 5xx, broker, Redis,
  NATS, sockets, timeouts). Never the record's fault: never DLQ'd, never a dedupe step. The worker
  raises :class:`InfraError`, its runtime rolls the cycle back and retries the same record after a
  backoff delay (back-pressure: nothing further is consumed meanwhile).
- ``bad_input``: the record itself is wrong (parse, envelope, validation, encode-range errors, a native
  decoder's panic on corrupt bytes): DLQ with the reason.
- ``internal``: anything else is our own bug: DLQ as an internal error (a metric and a log with the
  topic/partition/offset), so the record can be replayed once the bug is fixed.

Outage classes are recognised by name from the client libraries already imported (no import here).
An exception whose cause chain holds an outage (e.g. a codec error wrapping a registry timeout) is an
outage too.
"""

from __future__ import annotations

import sys
from typing import Literal

Kind = Literal["exit", "infra", "bad_input", "internal"]

EXIT = (KeyboardInterrupt, SystemExit, GeneratorExit)


class InfraError(Exception):
    """An infrastructure outage met while handling a record: retry it later, never DLQ it."""


# (module, class) of outage exceptions; isinstance-checked only when the module is already imported.
_INFRA_CLASSES: tuple[tuple[str, str], ...] = (
    ("httpx", "TransportError"),  # ConnectError, ConnectTimeout, ReadTimeout, ... (registry client)
    ("confluent_kafka", "KafkaException"),
    ("redis.exceptions", "ConnectionError"),
    ("redis.exceptions", "TimeoutError"),
    ("redis.exceptions", "BusyLoadingError"),
    ("redis.exceptions", "TryAgainError"),
    ("redis.exceptions", "ClusterDownError"),
    ("nats.errors", "ConnectionClosedError"),
    ("nats.errors", "NoServersError"),
    ("nats.errors", "TimeoutError"),
    ("nats.errors", "StaleConnectionError"),
    ("nats.errors", "OutboundBufferLimitError"),
    ("nats.js.errors", "NoStreamResponseError"),
    ("nats.js.errors", "ServiceUnavailableError"),
)
# Raised by native (pyo3) extensions on a corrupt input: derive from BaseException, not Exception.
_NATIVE_PANICS = frozenset({("pyo3_runtime", "PanicException")})
_BAD_INPUT_MODULES = ("msgspec",)  # msgspec.DecodeError / ValidationError: undecodable input


def _infra_types() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [InfraError, ConnectionError, TimeoutError]
    for module, name in _INFRA_CLASSES:
        mod = sys.modules.get(module)
        cls = getattr(mod, name, None) if mod is not None else None
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


def _is_infra_one(exc: BaseException) -> bool:
    if isinstance(exc, _infra_types()):
        return True
    # The registry client's HTTP errors: 5xx (and no status: no answer) are an outage, 4xx are ours.
    if type(exc).__name__ == "SchemaRegistryError":
        status = getattr(exc, "http_status_code", None)
        return not isinstance(status, int) or status < 0 or status >= 500
    return False


def is_infra(exc: BaseException) -> bool:
    """True when ``exc`` or anything in its cause/context chain is an infrastructure outage."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if _is_infra_one(cur):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def is_native_panic(exc: BaseException) -> bool:
    return any((c.__module__, c.__name__) in _NATIVE_PANICS for c in type(exc).__mro__)


def classify(exc: BaseException) -> Kind:
    """What ``exc``, raised while handling one record, means (see the module doc)."""
    if isinstance(exc, EXIT):
        return "exit"
    if is_infra(exc):
        return "infra"
    if isinstance(exc, (ValueError, UnicodeError)) or is_native_panic(exc):
        return "bad_input"
    if type(exc).__module__.split(".", 1)[0] in _BAD_INPUT_MODULES:
        return "bad_input"
    return "internal"


def reraise_unhandled(exc: BaseException) -> Kind:
    """Re-raise ``exc`` when a per-message boundary must not handle it (process exit, outage: raised
    as :class:`InfraError`); else return its kind (``bad_input`` or ``internal``) for the DLQ."""
    kind = classify(exc)
    if kind == "exit":
        raise exc
    if kind == "infra":
        if isinstance(exc, InfraError):
            raise exc
        raise InfraError(f"{type(exc).__name__}: {exc}") from exc
    return kind
