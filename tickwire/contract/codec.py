"""Avro codec for canonical records, Confluent wire format (0x00 + 4-byte big-endian schema id + body).

Schemas live in ``schemas/*.avsc`` (namespace ``io.tickwire.canonical``). Amounts are registered as
``decimal(38,9)`` on ``bytes``; the encoder writes them as the two's-complement big-endian unscaled int
(byte-identical to fastavro's Decimal path, far cheaper). Readers that use the registered schema see
``Decimal``/``date`` values; :meth:`Codec.decode` returns the msgspec records.

The codec is split by concern; this module is its public face and re-exports the rest:
``codec_schema`` (schema table, ids, loading), ``codec_datum`` (record <-> fastavro dicts, JSON view),
``codec_fast`` (generated encoders).

Schema ids:
- no registry: a fixed local table (``LOCAL_IDS``), stable across processes, for tests and offline tools;
- with ``registry_url``: ids from a Schema Registry, subject naming = record-name strategy
  (``io.tickwire.canonical.Trade``) because one record type goes to several topics
  (``stock_trades_realtime``, ``crypto_trades_realtime``, ...). Schemas are registered lazily on first
  encode. ``mock://NAME`` URLs share one in-process mock registry per URL, so a producer and a consumer
  codec built from the same URL agree on ids.

Enum-like fields (asset_class, side, ...) are Avro strings, not enums: cheaper per field and new values
never break old readers.
"""

from __future__ import annotations

import io
import json
import struct
import threading
from typing import Any

import fastavro

from tickwire.contract.codec_datum import avro_datum, from_datum, to_json_dict
from tickwire.contract.codec_fast import fast_encoder
from tickwire.contract.codec_schema import (
    CLASS_TO_NAME,
    LOCAL_IDS,
    NAMESPACE,
    SCHEMA_DIR,
    TABLE,
    AnyRecord,
    CodecError,
    Subscription,
    load_schema,
    plain_schema,
    schema_name,
)

# The names tests and tools have always imported from here.
_TABLE = TABLE
_CLASS_TO_NAME = CLASS_TO_NAME
__all__ = [
    "LOCAL_IDS",
    "NAMESPACE",
    "SCHEMA_DIR",
    "AnyRecord",
    "Codec",
    "CodecError",
    "Subscription",
    "avro_datum",
    "fast_encoder",
    "from_datum",
    "load_schema",
    "plain_schema",
    "schema_name",
    "to_json_dict",
]

_MAGIC = 0
_HEADER = struct.Struct(">bI")
_ENCODE_ERRORS = (ValueError, TypeError, AttributeError, OverflowError)

_mock_clients: dict[str, Any] = {}
_mock_lock = threading.Lock()


def _registry_client(url: str) -> Any:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    if url.startswith("mock://"):
        with _mock_lock:
            if url not in _mock_clients:
                _mock_clients[url] = SchemaRegistryClient.new_client({"url": url})
            return _mock_clients[url]
    return SchemaRegistryClient({"url": url})


class Codec:
    """Encode/decode canonical records in Confluent wire format. Thread-safe after warm-up."""

    def __init__(self, registry_url: str | None = None) -> None:
        self.registry_url = registry_url
        self._client = _registry_client(registry_url) if registry_url else None
        self._plain: dict[str, Any] = {}  # name -> parsed plain schema (writer for encode, reader for decode)
        self._ids: dict[str, int] = {}  # name -> schema id
        self._headers: dict[str, bytes] = {}  # name -> 5-byte wire header
        # schema id -> (name, parsed writer schema or None when identical to our reader schema)
        self._by_id: dict[int, tuple[str, Any]] = {}
        self._fast: dict[str, Any] = {}  # name -> fast encoder (record -> Avro body)
        # record class -> (wire header, fast encoder, name): encode's one lookup once the id is known
        self._by_cls: dict[type[Any], tuple[bytes, Any, str]] = {}
        for name in TABLE:
            self._plain[name] = fastavro.parse_schema(plain_schema(load_schema(name)), named_schemas={})
            self._fast[name] = fast_encoder(name)
        if self._client is None:
            for name, sid in LOCAL_IDS.items():
                self._set_id(name, sid, None)

    def _set_id(self, name: str, sid: int, writer: Any) -> None:
        self._ids[name] = sid
        self._headers[name] = _HEADER.pack(_MAGIC, sid)
        self._by_id[sid] = (name, writer)
        self._by_cls[TABLE[name][1]] = (self._headers[name], self._fast[name], name)

    def schema_id(self, name: str) -> int:
        """Schema id for a record name, registering it (record-name subject) when a registry is used."""
        if name not in self._ids:
            if self._client is None:
                raise CodecError(f"no schema id for {name}")
            from confluent_kafka.schema_registry import Schema

            text = json.dumps(load_schema(name))
            sid = int(self._client.register_schema(f"{NAMESPACE}.{name}", Schema(text, "AVRO")))
            self._set_id(name, sid, None)
        return self._ids[name]

    def encode(self, record: Any) -> bytes:
        hit = self._by_cls.get(type(record))
        if hit is None:
            self.schema_id(schema_name(record))  # CodecError for a non-record; registers a new one
            hit = self._by_cls[type(record)]
        header, enc, name = hit
        try:
            body: bytes = enc(record)
        except CodecError:
            raise
        except _ENCODE_ERRORS as exc:
            raise CodecError(f"cannot encode {name}: {type(exc).__name__}: {exc}") from exc
        return header + body

    def _lookup(self, sid: int) -> tuple[str, Any]:
        hit = self._by_id.get(sid)
        if hit is not None:
            return hit
        if self._client is None:
            raise CodecError(f"unknown schema id {sid} (local ids: {sorted(self._by_id)})")
        try:
            text = self._client.get_schema(sid).schema_str
        except Exception as exc:  # registry errors come in many classes
            raise CodecError(f"unknown schema id {sid}: {exc}") from exc
        schema = json.loads(text)
        full = schema.get("name", "")
        name = full.rsplit(".", 1)[-1]
        if name not in TABLE:
            raise CodecError(f"schema id {sid} is {full!r}, not a canonical record")
        writer = fastavro.parse_schema(plain_schema(schema), named_schemas={})
        self._by_id[sid] = (name, writer)
        return name, writer

    def decode(self, data: bytes) -> Any:
        if len(data) < 5 or data[0] != _MAGIC:
            raise CodecError("not Confluent wire format (bad magic byte or too short)")
        _, sid = _HEADER.unpack_from(data)
        name, writer = self._lookup(sid)
        buf = io.BytesIO(data)
        buf.seek(5)
        reader = self._plain[name]
        try:
            if writer is None:
                datum = fastavro.schemaless_reader(buf, reader, None)
            else:
                datum = fastavro.schemaless_reader(buf, writer, reader)
            if buf.tell() != len(data):
                raise CodecError(f"{len(data) - buf.tell()} trailing bytes after {name} body")
            if not isinstance(datum, dict):
                raise CodecError(f"corrupt {name} body: not a record")
            return from_datum(name, datum)
        except CodecError:
            raise
        except Exception as exc:  # fastavro raises EOFError, UnicodeDecodeError, IndexError, ...
            raise CodecError(f"corrupt {name} body: {type(exc).__name__}: {exc}") from exc
