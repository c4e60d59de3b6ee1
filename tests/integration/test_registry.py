"""The Avro codec against a real Confluent-compatible Schema Registry (local Apicurio, ccompat v7 API).

Every canonical record type round-trips through two independent codecs (the second with a fresh client,
so it must fetch schemas by id), the ids in the wire header are the registry's, the registry holds the
decimal(38,9) logical types, and the working-tree schemas pass the registry's own compatibility check.
"""

from __future__ import annotations

import contextlib
import io
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import fastavro
import pytest

from tests.unit.test_avro import samples
from tickwire.contract.codec import NAMESPACE, Codec, avro_datum, load_schema, plain_schema, schema_name

pytestmark = pytest.mark.integration

JSON = "application/vnd.schemaregistry.v1+json"


def rest(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": JSON})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{method} {url} -> {e.code}: {e.read().decode(errors='replace')}") from None


def subject(name: str) -> str:
    return f"{NAMESPACE}.{name}"


@pytest.fixture
def scratch_subjects(schema_registry_url: str) -> Iterator[Callable[[str], str]]:
    """Unique subjects for this test, deleted afterwards (the local registry is shared and long-lived)."""
    from tests.helpers import unique_name

    made: list[str] = []

    def make(base: str) -> str:
        made.append(unique_name(f"test.{base}"))
        return made[-1]

    yield make
    for s in made:
        for suffix in ("", "?permanent=true"):
            with contextlib.suppress(AssertionError):
                rest("DELETE", f"{schema_registry_url}/subjects/{s}{suffix}")


def test_every_record_round_trips_with_registry_ids(schema_registry_url: str) -> None:
    producer, consumer = Codec(schema_registry_url), Codec(schema_registry_url)
    for record in samples():
        data = producer.encode(record)
        assert data[0] == 0
        sid = int.from_bytes(data[1:5], "big")
        name = schema_name(record)
        # The registry's own answer for (subject, working-tree schema) is the id on the wire.
        found = rest(
            "POST",
            f"{schema_registry_url}/subjects/{subject(name)}",
            {"schema": json.dumps(load_schema(name))},
        )
        assert found["id"] == sid, name
        assert consumer.decode(data) == record


def test_registry_holds_decimal_logical_types(schema_registry_url: str) -> None:
    Codec(schema_registry_url).schema_id("Trade")
    latest = rest("GET", f"{schema_registry_url}/subjects/{subject('Trade')}/versions/latest")
    by_id = rest("GET", f"{schema_registry_url}/schemas/ids/{latest['id']}")
    fields = {f["name"]: f["type"] for f in json.loads(by_id["schema"])["fields"]}
    assert fields["price"] == {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 9}
    assert fields["strike"][1]["logicalType"] == "decimal"
    assert fields["expiry"][1] == {"type": "int", "logicalType": "date"}
    subjects = rest("GET", f"{schema_registry_url}/subjects")
    for record in samples():
        assert subject(schema_name(record)) in subjects


def test_decode_fetches_an_unknown_writer_schema(
    schema_registry_url: str, scratch_subjects: Callable[[str], str]
) -> None:
    """A newer writer (extra field with default) registered elsewhere decodes with the current reader."""
    writer = load_schema("Trade")
    writer["fields"].append({"name": "extra", "type": "string", "default": "", "doc": "test only"})
    sid = rest(
        "POST",
        f"{schema_registry_url}/subjects/{scratch_subjects('trade')}/versions",
        {"schema": json.dumps(writer)},
    )["id"]
    record = samples()[0]
    buf = io.BytesIO()
    fastavro.schemaless_writer(
        buf,
        fastavro.parse_schema(plain_schema(writer), named_schemas={}),
        {**avro_datum(record), "extra": "x"},
    )
    data = b"\x00" + sid.to_bytes(4, "big") + buf.getvalue()
    assert Codec(schema_registry_url).decode(data) == record


@pytest.mark.parametrize("name", ["Trade", "Quote", "Bar", "BookUpdate", "Instrument", "Gap", "Heartbeat"])
def test_working_tree_schema_is_compatible(schema_registry_url: str, name: str) -> None:
    Codec(schema_registry_url).schema_id(name)
    res = rest(
        "POST",
        f"{schema_registry_url}/compatibility/subjects/{subject(name)}/versions/latest",
        {"schema": json.dumps(load_schema(name))},
    )
    assert res["is_compatible"] is True


def test_registry_rejects_an_incompatible_change(
    schema_registry_url: str, scratch_subjects: Callable[[str], str]
) -> None:
    """The compatibility check above can fail: a new required field breaks BACKWARD compatibility."""
    s = scratch_subjects("quote")
    rest("POST", f"{schema_registry_url}/subjects/{s}/versions", {"schema": json.dumps(load_schema("Quote"))})
    rest("PUT", f"{schema_registry_url}/config/{s}", {"compatibility": "BACKWARD"})
    bad = load_schema("Quote")
    bad["fields"].append({"name": "required_new", "type": "long", "doc": "no default"})
    url = f"{schema_registry_url}/compatibility/subjects/{s}/versions/latest"
    assert rest("POST", url, {"schema": json.dumps(bad)})["is_compatible"] is False
    assert rest("POST", url, {"schema": json.dumps(load_schema("Quote"))})["is_compatible"] is True
