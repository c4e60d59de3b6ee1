"""The one topic applier: plan and apply topic specs against a cluster (``tickwire topics``), and
``ensure_topics`` for processes and tools that need a few topics to exist (the normalizer's
``--create-topics``, the stream runtime's changelogs, the control topic, the benchmarks).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from tickwire.contract.kafka_security import client_conf
from tickwire.topics import DEFAULT_FILE, TopicsFileError, TopicSpec, load_topics, topics_by_name


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
    admin: Any,
    specs: list[TopicSpec],
    changes: list[Change],
    timeout: float = 30.0,
    *,
    managed_only: bool = False,
) -> list[str]:
    """Carry out the fixable changes; returns error messages (empty when all went through).
    ``managed_only``: create topics with their ``extra_configs`` only (not retention/cleanup)."""
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
            config=dict(by_name[c.topic].extra_configs) if managed_only else by_name[c.topic].configs,
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

    from confluent_kafka import KafkaError, KafkaException

    deadline = time.monotonic() + within
    while True:
        try:
            left = [str(c) for c in plan(admin, specs, timeout=timeout) if c.fixable]
        except KafkaException as exc:
            # A broker that has not seen a just-created topic yet answers its config with "unknown topic".
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
            left = [f"not yet visible: {exc.args[0].str()}"]
        if not left:
            return []
        if time.monotonic() > deadline:
            return [f"still differs after apply: {c}" for c in left]
        time.sleep(0.2)


def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    *,
    replication: int = -1,
    configs: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> None:
    """Create each missing topic of ``{name: partitions}`` (existing ones are left as they are: a
    concurrent creator winning the race is fine); raises ``RuntimeError`` naming what failed.
    ``replication=-1``: the broker's ``default.replication.factor`` (1 locally, 3 on a real cluster)."""
    specs = [
        TopicSpec(
            name=n,
            partitions=p,
            replication=replication,
            retention_ms=-1,
            cleanup_policy="delete",
            key="",
            schema=None,
            purpose="",
        )
        for n, p in topics.items()
    ]
    admin = make_admin(bootstrap)
    creates = [c for c in plan(admin, specs, timeout=timeout) if c.kind == "create"]
    if not creates:
        return
    extra = dict(configs or {})
    # Only the configs the caller names: the broker's defaults (retention, cleanup) stay otherwise.
    specs = [replace(s, extra_configs=tuple(extra.items())) for s in specs]
    errors = apply_changes(admin, specs, creates, timeout=timeout, managed_only=True)
    if errors:
        raise RuntimeError("; ".join(errors))


def default_bootstrap() -> str:
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        return env
    from tickwire.infra.config import load_config

    return load_config().kafka_bootstrap


def make_admin(bootstrap: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient(client_conf(bootstrap) | {"socket.timeout.ms": 10000})


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tickwire topics",
        description="Apply or check topics.yaml against a Kafka cluster (idempotent).",
    )
    parser.add_argument("action", choices=["apply", "check", "list", "export"])
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
    parser.add_argument(
        "--acls",
        action="store_true",
        help="apply: also create the role ACLs (tickwire.acls; as a super user)",
    )
    parser.add_argument(
        "--format",
        choices=["strimzi", "strimzi-users"],
        default="strimzi",
        help="export: KafkaTopics (strimzi) or the role KafkaUsers with their ACLs (strimzi-users)",
    )
    parser.add_argument("--cluster", default="tickwire", help="export: the Strimzi Kafka cluster name")
    parser.add_argument("--namespace", help="export: metadata.namespace of every resource")
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
    if args.action == "export":
        from tickwire.topic_export import render, strimzi_topics, strimzi_users

        try:
            if args.format == "strimzi-users":
                docs = strimzi_users(
                    specs, cluster=args.cluster, prefix=args.prefix, namespace=args.namespace
                )
            else:
                docs = strimzi_topics(specs, cluster=args.cluster, namespace=args.namespace)
        except ValueError as e:
            print(f"tickwire topics export: {e}", file=sys.stderr)
            return 2
        sys.stdout.write(render(docs))
        return 0
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
    if args.acls and not errors:
        from tickwire.acls import apply_acls

        try:
            print(f"{apply_acls(admin, specs, args.prefix, args.timeout)} role ACL binding(s) applied")
        except Exception as e:  # not a super user, no authorizer, ...
            print(f"ERROR creating ACLs: {e}", file=sys.stderr)
            return 1
    return 1 if errors or unfixable else 0
