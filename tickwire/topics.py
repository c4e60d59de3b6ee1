"""topics.yaml: load and validate it, and apply / check it against a Kafka cluster.

``tickwire topics apply`` creates missing topics, grows partitions and aligns the configs we manage;
running it twice changes nothing. ``tickwire topics check`` reports drift and exits 1 when there is any.
Other modules use the loader: ``load_topics(path) -> list[TopicSpec]``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from tickwire.resources import topics_file

DEFAULT_FILE = topics_file()

TOPIC_KEYS = {
    "name",
    "partitions",
    "replication",
    "retention",
    "cleanup",
    "key",
    "schema",
    "purpose",
    "configs",
}
DEFAULT_KEYS = {"partitions", "replication", "retention", "cleanup"}
REQUIRED_KEYS = ("name", "key", "schema", "purpose")
CLEANUP_POLICIES = {"delete", "compact", "compact,delete"}
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}


class TopicsFileError(ValueError):
    """Invalid topics file; the message names the file and line."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    retention_ms: int  # -1 = forever
    cleanup_policy: str
    key: str
    schema: str | None  # path relative to the repo root (schemas/...), None for raw bytes
    purpose: str
    extra_configs: tuple[tuple[str, str], ...] = ()
    line: int = field(default=0, compare=False)  # 1-based line in the topics file (for messages)

    @property
    def compacted(self) -> bool:
        return "compact" in self.cleanup_policy

    @property
    def configs(self) -> dict[str, str]:
        """Every topic config this spec manages, as Kafka expects them (strings)."""
        return {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": self.cleanup_policy,
            **dict(self.extra_configs),
        }

    def with_prefix(self, prefix: str) -> TopicSpec:
        return replace(self, name=prefix + self.name)


def parse_retention(value: object) -> int:
    """``7d``/``24h``/``30m``/``45s``/``500ms``/``2w`` -> ms; ``-1``/``forever`` -> -1."""
    if value == -1 or value in ("-1", "forever", "infinite"):
        return -1
    if isinstance(value, str):
        m = _DURATION.match(value.strip())
        if m:
            return int(m.group(1)) * _UNIT_MS[m.group(2)]
    raise ValueError(f"bad retention {value!r}: use e.g. 7d, 24h, 30m, 45s, 500ms, 2w, or -1/forever")


def _where(path: Path, node: yaml.Node) -> str:
    return f"{path}:{node.start_mark.line + 1}"


def _scalar(path: Path, node: yaml.Node) -> object:
    if not isinstance(node, yaml.ScalarNode):
        kind = "list" if isinstance(node, yaml.SequenceNode) else "mapping"
        raise TopicsFileError(f"{_where(path, node)}: expected a single value, got a {kind}")
    value: object = yaml.SafeLoader("").construct_object(node)
    return value


def _mapping(path: Path, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
    """Items of a mapping node as (key, key node, value node), rejecting duplicate keys."""
    if not isinstance(node, yaml.MappingNode):
        raise TopicsFileError(f"{_where(path, node)}: {what} must be a mapping")
    seen: dict[str, int] = {}
    items: list[tuple[str, yaml.Node, yaml.Node]] = []
    for knode, vnode in node.value:
        key = _scalar(path, knode)
        if not isinstance(key, str):
            raise TopicsFileError(f"{_where(path, knode)}: key {key!r} must be a string")
        if key in seen:
            raise TopicsFileError(f"{_where(path, knode)}: duplicate key {key!r} (first on line {seen[key]})")
        seen[key] = knode.start_mark.line + 1
        items.append((key, knode, vnode))
    return items


def _int_field(path: Path, node: yaml.Node, key: str) -> int:
    value = _scalar(path, node)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TopicsFileError(f"{_where(path, node)}: {key} must be a positive integer, got {value!r}")
    return value


def _str_field(path: Path, node: yaml.Node, key: str) -> str:
    value = _scalar(path, node)
    if not isinstance(value, str) or not value.strip():
        raise TopicsFileError(f"{_where(path, node)}: {key} must be a non-empty string, got {value!r}")
    return value


def _check_value(path: Path, key: str, node: yaml.Node, base: Path) -> object:
    """Validate one topic/default field; returns its Python value."""
    if key in ("partitions", "replication"):
        return _int_field(path, node, key)
    if key == "retention":
        try:
            return parse_retention(_scalar(path, node))
        except ValueError as e:
            raise TopicsFileError(f"{_where(path, node)}: {e}") from None
    if key == "cleanup":
        value = _str_field(path, node, key).replace(" ", "")
        if value not in CLEANUP_POLICIES:
            raise TopicsFileError(
                f"{_where(path, node)}: cleanup must be one of {sorted(CLEANUP_POLICIES)}, got {value!r}"
            )
        return value
    if key == "name":
        value = _str_field(path, node, key)
        if not _TOPIC_NAME.match(value):
            raise TopicsFileError(f"{_where(path, node)}: invalid topic name {value!r}")
        return value
    if key == "schema":
        raw = _scalar(path, node)
        if raw is None:
            return None
        if not isinstance(raw, str) or not raw.endswith(".avsc") or not raw.startswith("schemas/"):
            raise TopicsFileError(
                f"{_where(path, node)}: schema must be null or a .avsc path under schemas/, got {raw!r}"
            )
        if not (base / raw).is_file():
            raise TopicsFileError(f"{_where(path, node)}: schema file {raw!r} not found under {base}")
        return raw
    if key == "configs":
        out: list[tuple[str, str]] = []
        for ck, _, cv in _mapping(path, node, "configs"):
            if ck in ("retention.ms", "cleanup.policy"):
                raise TopicsFileError(f"{_where(path, cv)}: set {ck} with retention/cleanup, not configs")
            val = _scalar(path, cv)
            if not isinstance(val, str):
                raise TopicsFileError(f"{_where(path, cv)}: config {ck} must be a quoted string, got {val!r}")
            out.append((ck, val))
        return tuple(sorted(out))
    return _str_field(path, node, key)


def load_topics(path: str | os.PathLike[str] = DEFAULT_FILE, *, base: Path | None = None) -> list[TopicSpec]:
    """Parse and validate a topics file. Schema paths are resolved against ``base`` (the file's folder)."""
    p = Path(path)
    root_dir = base if base is not None else p.resolve().parent
    try:
        text = p.read_text()
    except OSError as e:
        raise TopicsFileError(f"{p}: cannot read: {e}") from None
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        raise TopicsFileError(f"{p}: invalid YAML: {e}") from None
    if root is None:
        raise TopicsFileError(f"{p}: empty file")
    defaults: dict[str, object] = {}
    topics_node: yaml.Node | None = None
    for key, knode, vnode in _mapping(p, root, "the file"):
        if key == "defaults":
            for dk, dknode, dv in _mapping(p, vnode, "defaults"):
                if dk not in DEFAULT_KEYS:
                    raise TopicsFileError(f"{_where(p, dknode)}: unknown key {dk!r} in defaults")
                defaults[dk] = _check_value(p, dk, dv, root_dir)
        elif key == "topics":
            topics_node = vnode
        else:
            raise TopicsFileError(f"{_where(p, knode)}: unknown top-level key {key!r} (defaults, topics)")
    if not isinstance(topics_node, yaml.SequenceNode):
        where = _where(p, topics_node) if topics_node is not None else str(p)
        raise TopicsFileError(f"{where}: 'topics' must be a list")
    specs: list[TopicSpec] = []
    names: dict[str, int] = {}
    for item in topics_node.value:
        fields: dict[str, object] = {}
        for k, knode, vnode in _mapping(p, item, "a topic"):
            if k not in TOPIC_KEYS:
                raise TopicsFileError(
                    f"{_where(p, knode)}: unknown key {k!r} (known: {', '.join(sorted(TOPIC_KEYS))})"
                )
            fields[k] = _check_value(p, k, vnode, root_dir)
        line = item.start_mark.line + 1
        for k in REQUIRED_KEYS:
            if k not in fields:
                raise TopicsFileError(f"{p}:{line}: topic is missing {k!r}")
        for k in DEFAULT_KEYS:
            if k not in fields:
                if k not in defaults:
                    raise TopicsFileError(f"{p}:{line}: topic has no {k!r} and defaults give none")
                fields[k] = defaults[k]
        name = str(fields["name"])
        if name in names:
            raise TopicsFileError(f"{p}:{line}: duplicate topic name {name!r} (first on line {names[name]})")
        names[name] = line
        schema = fields["schema"]
        specs.append(
            TopicSpec(
                name=name,
                partitions=int(str(fields["partitions"])),
                replication=int(str(fields["replication"])),
                retention_ms=int(str(fields["retention"])),
                cleanup_policy=str(fields["cleanup"]),
                key=str(fields["key"]),
                schema=None if schema is None else str(schema),
                purpose=str(fields["purpose"]),
                extra_configs=fields.get("configs", ()),  # type: ignore[arg-type]
                line=line,
            )
        )
    return specs


def topics_by_name(specs: Iterable[TopicSpec]) -> dict[str, TopicSpec]:
    return {s.name: s for s in specs}
