"""Schemas parse, mirror the msgspec records, and stay backward compatible with their git history.

Backward compatibility: data written with any committed version of a schema must be readable with the
current one (fastavro schema resolution with writer = old, reader = new).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import fastavro
import msgspec
import pytest

from tickwire.contract.codec import _TABLE, SCHEMA_DIR, load_schema

ROOT = SCHEMA_DIR.parent
SCHEMA_FILES = sorted(SCHEMA_DIR.glob("*.avsc"))


def test_every_record_has_a_schema_file() -> None:
    assert {p.stem for p in SCHEMA_FILES} == {stem for stem, _, _ in _TABLE.values()}


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_parses_and_is_documented(path: Path) -> None:
    doc = json.loads(path.read_text())
    fastavro.parse_schema(doc, named_schemas={})
    assert doc["namespace"] == "io.tickwire.canonical"

    def walk(s: Any) -> None:
        if isinstance(s, dict):
            if s.get("type") == "record":
                assert s.get("doc"), s["name"]
                for f in s["fields"]:
                    assert f.get("doc"), f"{s['name']}.{f['name']} has no doc"
                    walk(f["type"])
            for k in ("items", "values"):
                if k in s:
                    walk(s[k])
        elif isinstance(s, list):
            for b in s:
                walk(b)

    walk(doc)


@pytest.mark.parametrize("name", sorted(_TABLE), ids=str)
def test_fields_mirror_struct(name: str) -> None:
    cls = _TABLE[name][1]
    assert [f["name"] for f in load_schema(name)["fields"]] == [f.name for f in msgspec.structs.fields(cls)]


def _sample(schema: Any, named: dict[str, Any]) -> Any:
    """A datum exercising every field of a schema (non-null union branches, non-empty arrays)."""
    if isinstance(schema, str):
        if schema in named:
            return _sample(named[schema], named)
        return {
            "string": "x",
            "long": 7,
            "int": 3,
            "boolean": True,
            "bytes": b"\x01\x02",
            "double": 1.5,
            "float": 1.5,
            "null": None,
        }[schema]
    if isinstance(schema, list):
        branch = next((b for b in schema if b != "null"), "null")
        return _sample(branch, named)
    t = schema["type"]
    if t == "record":
        named[schema["name"]] = schema
        named[schema["name"].rsplit(".", 1)[-1]] = schema
        return {f["name"]: _sample(f["type"], named) for f in schema["fields"]}
    if t == "array":
        return [_sample(schema["items"], named)]
    if t == "map":
        return {"k": _sample(schema["values"], named)}
    if t == "enum":
        return schema["symbols"][0]
    if schema.get("logicalType") == "decimal":
        from decimal import Decimal

        return Decimal("-12.345678901")
    if schema.get("logicalType") == "date":
        import datetime as dt

        return dt.date(2025, 12, 16)
    return _sample(t, named)


def _history(path: Path) -> list[tuple[str, str]]:
    if shutil.which("git") is None:
        return []
    rel = path.relative_to(ROOT).as_posix()
    try:
        log = subprocess.run(
            ["git", "log", "--format=%H", "--", rel], cwd=ROOT, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if log.returncode != 0:
        return []
    out = []
    for commit in log.stdout.split():
        shown = subprocess.run(["git", "show", f"{commit}:{rel}"], cwd=ROOT, capture_output=True, text=True)
        if shown.returncode == 0:
            out.append((commit, shown.stdout))
    return out


def _check_backward(old_text: str, new_doc: dict[str, Any]) -> None:
    old_doc = json.loads(old_text)
    old = fastavro.parse_schema(old_doc, named_schemas={})
    new = fastavro.parse_schema(new_doc, named_schemas={})
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, old, _sample(old_doc, {}))
    buf.seek(0)
    got = fastavro.schemaless_reader(buf, old, new)
    assert isinstance(got, dict)
    assert set(got) == {f["name"] for f in new_doc["fields"]}


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_backward_compatible_with_history(path: Path) -> None:
    new_doc = json.loads(path.read_text())
    _check_backward(path.read_text(), new_doc)  # a schema reads its own data
    versions = _history(path)
    if not versions:
        pytest.skip(f"no committed history for {path.name} (or git unavailable)")
    for commit, text in versions:
        try:
            _check_backward(text, new_doc)
        except Exception as exc:
            pytest.fail(
                f"{path.name}: data written with {commit[:10]} unreadable with the working copy: {exc}"
            )


def test_backward_check_catches_breaking_change() -> None:
    """The checker is not vacuous: a new required field without default breaks old data."""
    old = load_schema("Gap")
    new = json.loads(json.dumps(old))
    new["fields"].append({"name": "added", "type": "long", "doc": "x"})
    with pytest.raises(Exception):  # noqa: B017 - fastavro raises SchemaResolutionError
        _check_backward(json.dumps(old), new)
    new["fields"][-1]["default"] = 0
    _check_backward(json.dumps(old), new)
