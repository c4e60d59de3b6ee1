"""``tickwire topics export --format strimzi``: topics.yaml as Strimzi ``KafkaTopic`` resources;
``--format strimzi-users``: the roles of ``tickwire.acls`` as Strimzi ``KafkaUser`` resources.

topics.yaml stays the single source of truth: partitions, retention, cleanup policy and every managed
config come from it; the replication factor is the cluster's choice (``--replication``, as for
``tickwire topics apply``). Kubernetes object names must be DNS subdomains, so ``metadata.name`` is the
topic name lower-cased with ``_`` turned into ``-`` and ``spec.topicName`` keeps the real name.

A ``KafkaUser`` per role of ``tickwire.acls.role_grants`` (the grants ``tickwire topics apply --acls``
creates, so the two cannot drift): SCRAM-SHA-512 authentication (Strimzi's user operator creates the
password in a Secret named like the user) and ``simple`` authorization with the role's ACLs.
``metadata.name`` is the SASL user name, so a role must already be a valid Kubernetes name.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType

from tickwire.acls import Grant, role_grants
from tickwire.topics import TopicSpec

STRIMZI_API = "kafka.strimzi.io/v1beta2"
_DNS_INVALID = re.compile(r"[^a-z0-9.-]")
# Strimzi's names for Kafka's ACL enums (AclRule schema). An enum value missing here is a KeyError on
# export rather than a rule Strimzi would reject or, worse, silently read differently.
_RESOURCE = {
    ResourceType.TOPIC: "topic",
    ResourceType.GROUP: "group",
    ResourceType.TRANSACTIONAL_ID: "transactionalId",
    ResourceType.BROKER: "cluster",
}
_PATTERN = {ResourcePatternType.LITERAL: "literal", ResourcePatternType.PREFIXED: "prefix"}
_OPERATION = {
    AclOperation.ALL: "All",
    AclOperation.READ: "Read",
    AclOperation.WRITE: "Write",
    AclOperation.CREATE: "Create",
    AclOperation.DELETE: "Delete",
    AclOperation.ALTER: "Alter",
    AclOperation.DESCRIBE: "Describe",
    AclOperation.CLUSTER_ACTION: "ClusterAction",
    AclOperation.DESCRIBE_CONFIGS: "DescribeConfigs",
    AclOperation.ALTER_CONFIGS: "AlterConfigs",
    AclOperation.IDEMPOTENT_WRITE: "IdempotentWrite",
}


def k8s_name(topic: str) -> str:
    name = _DNS_INVALID.sub("-", topic.lower().replace("_", "-")).strip("-.")
    if not name or len(name) > 253:
        raise ValueError(f"topic {topic!r} has no valid Kubernetes name")
    return name


def strimzi_topics(
    specs: list[TopicSpec], *, cluster: str, namespace: str | None = None
) -> list[dict[str, Any]]:
    """One ``KafkaTopic`` per spec, in topics.yaml order; raises ValueError on a name collision."""
    seen: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for s in specs:
        name = k8s_name(s.name)
        if name in seen:
            raise ValueError(f"topics {seen[name]!r} and {s.name!r} map to the same Kubernetes name {name!r}")
        seen[name] = s.name
        notes = {"tickwire.io/key": s.key, "tickwire.io/purpose": s.purpose}
        if s.schema:
            notes["tickwire.io/schema"] = s.schema
        spec = {
            "topicName": s.name,
            "partitions": s.partitions,
            "replicas": s.replication,
            "config": dict(sorted(s.configs.items())),
        }
        out.append(
            _resource("KafkaTopic", name, spec, cluster=cluster, namespace=namespace, annotations=notes)
        )
    return out


def _resource(
    kind: str, name: str, spec: dict[str, Any], *, cluster: str, namespace: str | None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One Strimzi custom resource of the cluster ``cluster``, labelled as tickwire's."""
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {"strimzi.io/cluster": cluster, "app.kubernetes.io/part-of": "tickwire"},
    }
    if annotations:
        metadata["annotations"] = annotations
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": STRIMZI_API, "kind": kind, "metadata": metadata, "spec": spec}


def strimzi_acls(grants: list[Grant]) -> list[dict[str, Any]]:
    """Strimzi ``AclRule``s of ``grants``: one rule per resource pattern, operations in first-seen order.

    acls.py lists a topic both read and written twice (one grant per access); Strimzi takes one rule
    with the union of operations. A cluster resource has no name in Strimzi.
    """
    merged: dict[tuple[str, str, str], list[str]] = {}
    for g in grants:
        kind = _RESOURCE[g.resource]
        name = "" if kind == "cluster" else g.name
        ops = merged.setdefault((kind, name, _PATTERN[g.pattern]), [])
        ops += [op for op in (_OPERATION[o] for o in g.ops) if op not in ops]
    out: list[dict[str, Any]] = []
    for (kind, name, pattern), ops in merged.items():
        resource: dict[str, str] = {"type": kind}
        if kind != "cluster":
            resource |= {"name": name, "patternType": pattern}
        out.append({"resource": resource, "operations": ops})  # type allow, host * (Strimzi's defaults)
    return out


def strimzi_users(
    specs: list[TopicSpec], *, cluster: str, prefix: str = "", namespace: str | None = None
) -> list[dict[str, Any]]:
    """One ``KafkaUser`` per role of ``role_grants(specs, prefix)``, in its order (admin excluded: a
    super user has no ACLs, and on Kubernetes the topic operator, not tickwire, administers topics)."""
    out: list[dict[str, Any]] = []
    for role, grants in role_grants(specs, prefix).items():
        if k8s_name(role) != role:
            raise ValueError(f"role {role!r} is no valid Kubernetes name (it names the KafkaUser)")
        spec = {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {"type": "simple", "acls": strimzi_acls(grants)},
        }
        out.append(_resource("KafkaUser", role, spec, cluster=cluster, namespace=namespace))
    return out


def render(docs: list[dict[str, Any]], header: str = "") -> str:
    body = yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, width=200)
    return header + body
