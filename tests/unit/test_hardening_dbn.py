"""Issue 16, input side, found by the fuzz job: corrupt DBN is a ParseError from the parser (so also for
``tickwire parse``), never the native decoder's panic (a BaseException) or a DBNError from a field."""

from __future__ import annotations

import io
from pathlib import Path

import databento_dbn as dbn
import pytest

from tickwire import vendors
from tickwire.contract.envelope import Envelope
from tickwire.contract.parser import ParseError
from tickwire.normalize.parse_cli import dbn_items

pytestmark = pytest.mark.unit

DBN_DIR = Path("/work/shared/data/dbn")
ENV = Envelope("databento", "replay.test", 1, 1, 2_000_000_000 * 10**9, "dbn")
needs_files = pytest.mark.skipif(not DBN_DIR.is_dir(), reason="no shared DBN files")


def _parse(payload: bytes) -> object:
    parser = vendors.get_parser("databento")
    return parser.parse(payload, ENV, parser.new_state())


def _stats_with_a_mislabelled_record() -> bytes:
    """Three statistics records; the second one's rtype says symbol mapping (80+ bytes) at 64 bytes."""
    _n, payload, _s, _t = next(iter(dbn_items((DBN_DIR / "test_data.statistics.dbn").read_bytes(), 3)))
    b = bytearray(payload)
    first = 8 + int.from_bytes(b[4:8], "little")
    b[first + b[first] * 4 + 1] = 22
    return bytes(b)


def _zstd(plain: bytes) -> bytes:
    sink = io.BytesIO()
    tc = dbn.Transcoder(sink, dbn.Encoding.DBN, dbn.Compression.ZSTD, map_symbols=False)
    tc.write(plain)
    tc.flush()
    tc.finish()
    return sink.getvalue()


@needs_files
def test_mislabelled_record_is_a_parse_error_before_the_decoder_sees_it() -> None:
    with pytest.raises(ParseError, match="length 64 invalid for rtype 22"):
        _parse(_stats_with_a_mislabelled_record())


@needs_files
def test_decoder_panic_on_a_zstd_stream_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="PanicException"):
        _parse(_zstd(_stats_with_a_mislabelled_record()))


@needs_files
def test_definition_with_a_non_utf8_raw_symbol_is_a_parse_error() -> None:
    data = (DBN_DIR / "test_data.definition.v3.dbn.zst").read_bytes()
    dec = dbn.DBNDecoder(compression=dbn.Compression.ZSTD)
    dec.write(data)
    md, rec = dec.decode()[:2]
    assert _parse(bytes(md.encode()) + bytes(rec)).records[0].symbol == rec.raw_symbol  # intact: parses
    raw = bytearray(bytes(rec))
    at = raw.index(rec.raw_symbol.encode() + b"\0")
    raw[at : at + 4] = b"\xff" * 4
    with pytest.raises(ParseError, match="UTF-8"):
        _parse(bytes(md.encode()) + bytes(raw))
