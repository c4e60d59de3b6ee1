"""``tickwire topics export --format strimzi``: topics.yaml as Strimzi ``KafkaTopic`` resources.

topics.yaml stays the single source of truth: partitions, retention, cleanup policy and every managed
config come from it; the replication factor is the cluster's choice (``--replication``, as for
``tickwire topics apply``). Kubernetes object names must be DNS subdomains, so ``metadata.name`` is the
topic name lower-cased with ``_`` turned into ``-`` and ``spec.topicName`` keeps the real name.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from tickwire.topics import TopicSpec

STRIMZI_API = "kafka.strimzi.io/v1beta2"
_DNS_INVALID = re.compile(r"[^a-z0-9.-]")


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
        metadata: dict[str, Any] = {
            "name": name,
            "labels": {"strimzi.io/cluster": cluster, "app.kubernetes.io/part-of": "tickwire"},
            "annotations": {"tickwire.io/key": s.key, "tickwire.io/purpose": s.purpose},
        }
        if s.schema:
            metadata["annotations"]["tickwire.io/schema"] = s.schema
        if namespace:
            metadata["namespace"] = namespace
        out.append(
            {
                "apiVersion": STRIMZI_API,
                "kind": "KafkaTopic",
                "metadata": metadata,
                "spec": {
                    "topicName": s.name,
                    "partitions": s.partitions,
                    "replicas": s.replication,
                    "config": dict(sorted(s.configs.items())),
                },
            }
        )
    return out


def render(docs: list[dict[str, Any]], header: str = "") -> str:
    body = yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, width=200)
    return header + body
