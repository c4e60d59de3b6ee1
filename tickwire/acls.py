"""Least-privilege Kafka ACLs of tickwire's roles, derived from topics.yaml.

Each topic of topics.yaml falls in one class by its name (the scheme of ``tickwire.contract.routing``):
``<vendor>.raw`` (raw), ``<vendor>.raw.dlq`` (raw DLQ), ``bridge.<sink>.dlq`` (bridge DLQ),
``tickwire.gaps``, ``tickwire.health``, ``control.subscriptions`` (control) and everything else
(canonical). The roles, one SASL user each (``User:<role>``):

- ``ingest-<vendor>`` (one per raw topic): writes its own ``<vendor>.raw`` (and its ``.dlq`` for
  oversized frames), the gap/health topics and its session markers (``tickwire.sessions``),
  reads the control topic (``tickwire-control-*`` reader groups).
- ``normalizer``: reads every raw topic; writes canonical, raw-DLQ and gap topics; owns the topics,
  group and transactional ids prefixed with its app id (changelogs ``{app}-{raw}-changelog``).
- ``bridge-redis`` / ``bridge-nats``: read canonical topics in their app-id group, write their DLQ;
  the Redis bridge (control bridge) also reads and writes the control topic.
- ``subscriptions`` (the ``tickwire subscriptions`` tooling): reads and writes the control topic.

``admin`` is a super user (topic administration); it gets no ACLs. ``tickwire topics apply --acls``
creates these bindings (``--prefix`` applies to topic names, groups and transactional ids alike).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from tickwire.topics import TopicSpec

CONTROL = "control.subscriptions"
GAPS = "tickwire.gaps"
HEALTH = "tickwire.health"
SESSIONS = "tickwire.sessions"
SESSIONS_GROUP = "tickwire-sessions-"  # the producers' session-marker reader groups (never committed)
CONTROL_GROUP = "tickwire-control-"  # ControlReader's never-committed reader groups
APP_IDS = {
    "normalizer": "tickwire-normalizer",
    "bridge-redis": "tickwire-bridge-redis",
    "bridge-nats": "tickwire-bridge-nats",
}
ADMIN_USER = "admin"

_R, _W, _D, _DC = AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS
_READ = (_R, _D, _DC)
_WRITE = (_W, _D)


@dataclass(frozen=True)
class Grant:
    resource: ResourceType
    name: str
    pattern: ResourcePatternType
    ops: tuple[AclOperation, ...]


def topic_class(name: str) -> str:
    """raw | raw_dlq | bridge_dlq | gaps | health | control | canonical."""
    if name.endswith(".raw"):
        return "raw"
    if name.endswith(".raw.dlq"):
        return "raw_dlq"
    if name.startswith("bridge.") and name.endswith(".dlq"):
        return "bridge_dlq"
    return {GAPS: "gaps", HEALTH: "health", SESSIONS: "sessions", CONTROL: "control"}.get(name, "canonical")


def _topics(names: Iterable[str], ops: tuple[AclOperation, ...]) -> list[Grant]:
    return [Grant(ResourceType.TOPIC, n, ResourcePatternType.LITERAL, ops) for n in names]


def _prefixed(resource: ResourceType, name: str, ops: tuple[AclOperation, ...]) -> Grant:
    return Grant(resource, name, ResourcePatternType.PREFIXED, ops)


def role_grants(specs: Sequence[TopicSpec], prefix: str = "") -> dict[str, list[Grant]]:
    """Role name -> its grants, for the topics of ``specs`` (already prefixed) and ``prefix``."""
    by_class: dict[str, list[str]] = {}
    for s in specs:
        by_class.setdefault(topic_class(s.name[len(prefix) :]), []).append(s.name)
    raw, canonical = by_class.get("raw", []), by_class.get("canonical", [])
    control = [prefix + CONTROL]
    cluster = Grant(
        ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL, (AclOperation.IDEMPOTENT_WRITE,)
    )
    control_reader = [*_topics(control, _READ), _prefixed(ResourceType.GROUP, CONTROL_GROUP, (_R,))]
    out: dict[str, list[Grant]] = {}
    for topic in raw:
        vendor = topic[len(prefix) : -len(".raw")]
        out[f"ingest-{vendor}"] = [
            *_topics([topic, f"{topic}.dlq", prefix + GAPS, prefix + HEALTH, prefix + SESSIONS], _WRITE),
            # session markers: the previous session's marker and its last seq on the raw topic
            *_topics([topic, prefix + SESSIONS], _READ),
            _prefixed(ResourceType.GROUP, SESSIONS_GROUP, (_R,)),
            *control_reader,
            cluster,
        ]
    app = prefix + APP_IDS["normalizer"]
    out["normalizer"] = [
        *_topics(raw, _READ),
        *_topics([*canonical, *by_class.get("raw_dlq", []), prefix + GAPS], _WRITE),
        _prefixed(ResourceType.TOPIC, f"{app}-", (AclOperation.ALL,)),
        _prefixed(ResourceType.GROUP, app, (_R,)),
        _prefixed(ResourceType.TRANSACTIONAL_ID, f"{app}-", (_W, _D)),
        cluster,
    ]
    for role in ("bridge-redis", "bridge-nats"):
        sink = role.split("-", 1)[1]
        grants = [
            *_topics(canonical, _READ),
            *_topics([prefix + f"bridge.{sink}.dlq"], _WRITE),
            _prefixed(ResourceType.GROUP, prefix + APP_IDS[role], (_R,)),
            cluster,
        ]
        if role == "bridge-redis":  # the control bridge (legacy subscribe -> control topic), status keys
            grants += [*control_reader, *_topics(control, (_W,)), *_topics([prefix + HEALTH], _READ)]
        out[role] = grants
    out["subscriptions"] = [*control_reader, *_topics(control, (_W,)), cluster]
    return out


def bindings(specs: Sequence[TopicSpec], prefix: str = "") -> list[AclBinding]:
    """Every binding once (a topic both read and written is described once)."""
    out: dict[str, AclBinding] = {}
    for role, grants in role_grants(specs, prefix).items():
        for g in grants:
            for op in g.ops:
                b = AclBinding(
                    g.resource, g.name, g.pattern, f"User:{role}", "*", op, AclPermissionType.ALLOW
                )
                out.setdefault(str(b), b)
    return list(out.values())


def apply_acls(
    admin: AdminClient, specs: Sequence[TopicSpec], prefix: str = "", timeout: float = 30.0
) -> int:
    """Create every binding (creating an existing one is a no-op); returns how many; raises on error."""
    acls = bindings(specs, prefix)
    for fut in admin.create_acls(acls, request_timeout=timeout).values():
        fut.result()
    # Created means written to the metadata log; wait until the broker serves them (its authorizer
    # follows the same metadata), so a client started right after is not refused.
    any_acl = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY
    )
    want = {str(b) for b in acls}
    deadline = time.monotonic() + timeout
    while not want <= {str(b) for b in admin.describe_acls(any_acl, request_timeout=timeout).result()}:
        if time.monotonic() > deadline:
            raise TimeoutError(f"ACLs not visible on the broker after {timeout}s")
        time.sleep(0.2)
    return len(acls)


def roles(specs: Sequence[TopicSpec], prefix: str = "") -> list[str]:
    """Every SASL user the secured cluster needs: admin + one per role."""
    return [ADMIN_USER, *role_grants(specs, prefix)]
