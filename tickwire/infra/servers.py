"""The local servers (Kafka, Redis, NATS, Schema Registry) behind one interface: status, up, down."""

from __future__ import annotations

from tickwire.infra.config import InfraConfig
from tickwire.infra.kafka import Kafka
from tickwire.infra.process import InfraError
from tickwire.infra.redis_nats import Nats, Redis
from tickwire.infra.schema_registry import Registry, RegistryUnavailable, registry_java
from tickwire.infra.server_base import Server

SERVERS: dict[str, type[Server]] = {"kafka": Kafka, "redis": Redis, "nats": Nats, "registry": Registry}


def servers(cfg: InfraConfig, only: list[str] | None = None) -> list[Server]:
    names = only or [n for n in SERVERS if n != "registry" or cfg.registry_enabled]
    unknown = [n for n in names if n not in SERVERS]
    if unknown:
        raise InfraError(f"unknown server(s) {unknown}; choose from {list(SERVERS)}")
    out: list[Server] = []
    for n in names:
        if n == "kafka":
            out.extend(Kafka(cfg, node=i) for i in cfg.kafka_nodes)  # one per KRaft node
        else:
            out.append(SERVERS[n](cfg))
    return out


def env_exports(cfg: InfraConfig) -> dict[str, str]:
    """What a client needs to reach these servers (printed by `infra up`, used by tests)."""
    out = {
        "KAFKA_BOOTSTRAP_SERVERS": cfg.kafka_bootstrap,
        "REDIS_URL": cfg.redis_url,
        "NATS_URL": cfg.nats_url,
    }
    if cfg.registry_enabled:
        out["SCHEMA_REGISTRY_URL"] = cfg.registry_url
    return out


__all__ = [
    "SERVERS",
    "InfraError",
    "Kafka",
    "Nats",
    "Redis",
    "Registry",
    "RegistryUnavailable",
    "Server",
    "env_exports",
    "registry_java",
    "servers",
]
