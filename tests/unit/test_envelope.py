"""The raw envelope: headers round trip, the optional request context, malformed headers."""

from __future__ import annotations

import pytest

from tickwire.contract.envelope import H_CONTEXT, H_SEQ, Envelope, EnvelopeError, context_header


def test_headers_round_trip_without_context_write_no_context_header() -> None:
    env = Envelope("v", "s", 1, 2, 3, "json", "1.0")
    headers = env.to_headers()
    assert H_CONTEXT not in dict(headers)
    back = Envelope.from_headers(headers)
    assert back == env and back.context == "" and back.context_map() == {}


def test_context_round_trips_through_headers_with_reserved_characters() -> None:
    name, value = context_header({"req_id": 7, "symbol": "BRK B", "exchange": "ARCA&X", "kind": "a=b"})
    assert name == H_CONTEXT and value.isascii()
    env = Envelope.from_headers([*Envelope("v", "s", 1, 2, 3, "tws").to_headers(), (name, value)])
    assert env.context_map() == {"req_id": "7", "symbol": "BRK B", "exchange": "ARCA&X", "kind": "a=b"}
    assert Envelope.from_headers(env.to_headers()) == env


def test_a_malformed_seq_is_an_envelope_error() -> None:
    headers = dict(Envelope("v", "s", 1, 2, 3, "json").to_headers())
    headers[H_SEQ] = b"x"
    with pytest.raises(EnvelopeError):
        Envelope.from_headers(list(headers.items()))
