"""topics.yaml: load and validate it, and apply / check it against a Kafka cluster.

``tickwire topics apply`` creates missing topics, grows partitions and aligns the configs we manage;
running it twice changes nothing. ``tickwire topics check`` reports drift and exits 1 when there is any.
Other modules use the loader: ``load_topics(path) -> list[TopicSpec]``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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


# --- cluster side ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    topic: str
    kind: str  # create | partitions | config | shrink | replication
    detail: str
    fixable: bool = True

    def __str__(self) -> str:
        return f"{self.kind:<11} {self.topic}: {self.detail}"


def _norm(key: str, value: str | None) -> str | None:
    if value is not None and key == "cleanup.policy":
        return ",".join(sorted(value.replace(" ", "").split(",")))
    return value


def plan(admin: Any, specs: list[TopicSpec], timeout: float = 15.0) -> list[Change]:
    """Differences between the specs and the cluster, for the keys we manage."""
    from confluent_kafka.admin import ConfigResource, ResourceType

    md = admin.list_topics(timeout=timeout)
    changes: list[Change] = []
    existing = [s for s in specs if s.name in md.topics and md.topics[s.name].error is None]
    for s in specs:
        if s not in existing:
            cfg = " ".join(f"{k}={v}" for k, v in s.configs.items())
            changes.append(
                Change(s.name, "create", f"partitions={s.partitions} replication={s.replication} {cfg}")
            )
    if not existing:
        return changes
    resources = [ConfigResource(ResourceType.TOPIC, s.name) for s in existing]
    described = admin.describe_configs(resources, request_timeout=timeout)
    by_name = {r.name: f for r, f in described.items()}
    for s in existing:
        tmd = md.topics[s.name]
        have_parts = len(tmd.partitions)
        if have_parts < s.partitions:
            changes.append(Change(s.name, "partitions", f"{have_parts} -> {s.partitions}"))
        elif have_parts > s.partitions:
            changes.append(
                Change(
                    s.name,
                    "shrink",
                    f"has {have_parts} partitions, wants {s.partitions}: cannot shrink",
                    False,
                )
            )
        reps = {len(p.replicas) for p in tmd.partitions.values()}
        if reps and reps != {s.replication}:
            changes.append(
                Change(
                    s.name,
                    "replication",
                    f"has {sorted(reps)}, wants {s.replication}: not changed here",
                    False,
                )
            )
        entries = by_name[s.name].result(timeout=timeout)
        for key, want in s.configs.items():
            entry = entries.get(key)
            have = None if entry is None else entry.value
            if _norm(key, have) != _norm(key, want):
                changes.append(Change(s.name, "config", f"{key}: {have} -> {want}"))
    return changes


def apply_changes(
    admin: Any, specs: list[TopicSpec], changes: list[Change], timeout: float = 30.0
) -> list[str]:
    """Carry out the fixable changes; returns error messages (empty when all went through)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import (
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        NewPartitions,
        NewTopic,
        ResourceType,
    )

    by_name = topics_by_name(specs)
    errors: list[str] = []
    creates = [
        NewTopic(
            c.topic,
            num_partitions=by_name[c.topic].partitions,
            replication_factor=by_name[c.topic].replication,
            config=by_name[c.topic].configs,
        )
        for c in changes
        if c.kind == "create"
    ]
    if creates:
        for name, fut in admin.create_topics(creates, request_timeout=timeout).items():
            try:
                fut.result(timeout=timeout)
            except KafkaException as e:
                if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # a concurrent apply won the race
                    errors.append(f"create {name}: {e.args[0].str()}")
    grow = [NewPartitions(c.topic, by_name[c.topic].partitions) for c in changes if c.kind == "partitions"]
    if grow:
        for name, fut in admin.create_partitions(grow, request_timeout=timeout).items():
            try:
                fut.result(timeout=timeout)
            except KafkaException as e:
                # A concurrent apply may have grown it already; convergence is checked afterwards.
                if e.args[0].code() != KafkaError.INVALID_PARTITIONS:
                    errors.append(f"partitions {name}: {e.args[0].str()}")
    alter: dict[str, list[Any]] = {}
    for c in changes:
        if c.kind == "config":
            key = c.detail.split(":", 1)[0]
            value = by_name[c.topic].configs[key]
            alter.setdefault(c.topic, []).append(
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
            )
    if alter:
        resources = [ConfigResource(ResourceType.TOPIC, t, incremental_configs=e) for t, e in alter.items()]
        for res, fut in admin.incremental_alter_configs(resources, request_timeout=timeout).items():
            try:
                fut.result(timeout=timeout)
            except KafkaException as e:
                errors.append(f"config {res.name}: {e.args[0].str()}")
    return errors


def _await_converged(admin: Any, specs: list[TopicSpec], timeout: float, within: float = 15.0) -> list[str]:
    """Wait until the broker's metadata shows the changes (it trails the controller by a moment), so a
    `check` right after `apply` agrees with it."""
    import time

    deadline = time.monotonic() + within
    while True:
        left = [c for c in plan(admin, specs, timeout=timeout) if c.fixable]
        if not left:
            return []
        if time.monotonic() > deadline:
            return [f"still differs after apply: {c}" for c in left]
        time.sleep(0.2)


def default_bootstrap() -> str:
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        return env
    from tickwire.infra.config import load_config

    return load_config().kafka_bootstrap


def make_admin(bootstrap: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tickwire topics",
        description="Apply or check topics.yaml against a Kafka cluster (idempotent).",
    )
    parser.add_argument("action", choices=["apply", "check", "list"])
    parser.add_argument("--file", default=str(DEFAULT_FILE), help="topics file (default: %(default)s)")
    parser.add_argument(
        "--bootstrap", help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS or local)"
    )
    parser.add_argument("--prefix", default="", help="prepend to every topic name (tests, sandboxes)")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds per admin request")
    parser.add_argument(
        "--replication",
        type=int,
        help="replication factor for every topic, overriding topics.yaml (e.g. 3 on a production cluster)",
    )
    args = parser.parse_args(argv)
    try:
        specs = [s.with_prefix(args.prefix) for s in load_topics(args.file)]
    except TopicsFileError as e:
        print(f"tickwire topics: {e}", file=sys.stderr)
        return 2
    if args.replication is not None:
        if args.replication < 1:
            print("tickwire topics: --replication must be >= 1", file=sys.stderr)
            return 2
        specs = [replace(s, replication=args.replication) for s in specs]
    if args.action == "list":
        for s in specs:
            ret = "forever" if s.retention_ms < 0 else f"{s.retention_ms}ms"
            print(
                f"{s.name:<28} p={s.partitions:<2} r={s.replication} "
                f"{s.cleanup_policy:<14} {ret:<12} {s.schema}"
            )
        return 0
    bootstrap = args.bootstrap or default_bootstrap()
    admin = make_admin(bootstrap)
    try:
        changes = plan(admin, specs, timeout=args.timeout)
    except Exception as e:  # broker unreachable, auth, ...: one clear line
        print(f"tickwire topics {args.action}: cannot read cluster {bootstrap}: {e}", file=sys.stderr)
        return 1
    unfixable = [c for c in changes if not c.fixable]
    if args.action == "check":
        for c in changes:
            print(f"drift {c}")
        print(f"{len(specs)} topics checked on {bootstrap}: {len(changes)} difference(s)")
        return 1 if changes else 0
    fixable = [c for c in changes if c.fixable]
    for c in fixable:
        print(c)
    errors = apply_changes(admin, specs, fixable, timeout=max(args.timeout, 30.0)) if fixable else []
    if fixable and not errors:
        errors = _await_converged(admin, specs, args.timeout)
    for c in unfixable:
        print(f"WARNING {c}", file=sys.stderr)
    for err in errors:
        print(f"ERROR {err}", file=sys.stderr)
    untouched = len(specs) - len({c.topic for c in fixable})
    print(f"{len(fixable)} change(s) applied on {bootstrap}, {untouched} topic(s) already up to date")
    return 1 if errors or unfixable else 0
