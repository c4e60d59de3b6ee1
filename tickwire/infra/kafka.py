"""Apache Kafka (KRaft, single combined node) from Maven Central jars on the machine's Java."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from tickwire.infra.config import InfraConfig
from tickwire.infra.process import (
    InfraError,
    cmdline,
    ensure_apt,
    file_lock,
    port_open,
)
from tickwire.infra.server_base import Server
from tickwire.logs import kv

log = logging.getLogger(__name__)


_LOG4J1 = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.controller=INFO
"""

_LOG4J2 = """\
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.state.name = state.change.logger
logger.state.level = warn
"""

_KAFKA_READY = "Kafka Server started"
# Keys that differ between the nodes of a cluster (the rest is cluster-wide: `cluster_properties`).
PER_NODE_KEYS = ("node.id", "controller.quorum.voters", "listeners", "advertised.listeners", "log.dirs")
_VERSION_IN_PATH = re.compile(r"/kafka-([0-9][^/]*)/libs/")


def new_cluster_id() -> str:
    """A KRaft cluster id as Kafka's own `Uuid.randomUuid()` makes it: URL-safe base64 of 16 random
    bytes, never beginning with '-' (1 in 64 would, and then reads as a flag to the storage tool)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


class Kafka(Server):
    """One KRaft node (broker+controller). ``node`` numbers it within a cluster of
    ``cfg.kafka_brokers`` nodes (static voters); with one broker it is the plain local broker."""

    name = "kafka"
    port_env = "TICKWIRE_KAFKA_PORT"

    def __init__(self, cfg: InfraConfig, node: int = 1) -> None:
        super().__init__(cfg)
        self.node = node
        self._ports = cfg.kafka_ports(node)
        if self.clustered:
            self.name = f"kafka-{node}"

    @property
    def clustered(self) -> bool:
        return self.cfg.kafka_brokers > 1

    @property
    def reuse_external(self) -> bool:
        # A cluster node on a port some other broker holds would join nothing: refuse instead.
        return not self.clustered

    @property
    def port(self) -> int:
        return self._ports[0]

    @property
    def controller_port(self) -> int:
        return self._ports[1]

    @property
    def node_dir(self) -> Path:
        if self.clustered:
            return self.cfg.kafka_cluster_dir / f"node-{self.port}"
        return self.cfg.kafka_node_dir

    @property
    def log_file(self) -> Path:
        return self.node_dir / "kafka.log"

    @property
    def data_dir(self) -> Path:
        return self.node_dir / "data"

    @property
    def props_file(self) -> Path:
        return self.node_dir / "server.properties"

    @property
    def log_config(self) -> Path:
        return self.node_dir / ("log4j2.properties" if self.cfg.kafka_major >= 4 else "log4j.properties")

    def owns(self, argv: list[str]) -> bool:
        suffix = f"/node-{self.port}/server.properties"
        if self.clustered:
            suffix = f"/{self.cfg.kafka_cluster_dir.name}{suffix}"
        return "kafka.Kafka" in argv and any(a.endswith(suffix) for a in argv)

    def version(self, pid: int | None) -> str | None:
        if pid is None:
            return self.cfg.kafka_version
        for a in cmdline(pid):
            m = _VERSION_IN_PATH.search(a)
            if m:
                return m.group(1)
        return None

    def server_properties(self) -> str:
        c = self.cfg
        # Replication 3 / min ISR 2 from three nodes on (one node may be down and acks=all still
        # succeeds); a single node has one replica of everything.
        rf = str(min(3, c.kafka_brokers))
        isr = str(2 if c.kafka_brokers >= 3 else 1)
        # Few internal partitions keep the first group join and the first transaction fast.
        internal_parts = "1" if c.kafka_brokers == 1 else "3"
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node),
            "controller.quorum.voters": c.kafka_voters,
            "listeners": f"PLAINTEXT://{c.host}:{self.port},CONTROLLER://{c.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{c.host}:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "default.replication.factor": rf,
            "min.insync.replicas": isr,
            "unclean.leader.election.enable": "false",
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": internal_parts,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": isr,
            "transaction.state.log.num.partitions": internal_parts,
            "group.initial.rebalance.delay.ms": "0",
            # Auto-creation keeps ad-hoc tools simple; tickwire's own processes create their topics
            # explicitly.
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "log.retention.check.interval.ms": "60000",
        }
        if self.clustered:
            # A dead node is fenced (its partitions lose it from the ISR, leaders move) after 6 s
            # instead of 9 s: local clusters exist to exercise failover.
            props |= {"broker.session.timeout.ms": "6000", "broker.heartbeat.interval.ms": "1000"}
        if c.kafka_major >= 4:
            props |= {
                "share.coordinator.state.topic.replication.factor": rf,
                "share.coordinator.state.topic.min.isr": isr,
                "share.coordinator.state.topic.num.partitions": internal_parts,
            }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def cluster_properties(self) -> str:
        """The cluster-wide part of ``server_properties`` (what a container image ships; each node adds
        ``PER_NODE_KEYS`` from its environment)."""
        lines = self.server_properties().splitlines()
        return "".join(f"{ln}\n" for ln in lines if ln.split("=", 1)[0] not in PER_NODE_KEYS)

    def log_properties(self) -> str:
        return _LOG4J2 if self.cfg.kafka_major >= 4 else _LOG4J1

    def _java(self) -> str:
        java = ensure_apt("java", "openjdk-17-jre-headless")
        return java

    def _classpath(self) -> str:
        return f"{self.cfg.kafka_libs}/*"

    def _jvm_flags(self, heap: str | None = None) -> list[str]:
        log_flag = (
            f"-Dlog4j2.configurationFile={self.log_config}"
            if self.cfg.kafka_major >= 4
            else f"-Dlog4j.configuration=file:{self.log_config}"
        )
        return [
            "-Xms128m",
            f"-Xmx{heap or self.cfg.kafka_heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.node_dir}",
            log_flag,
        ]

    def ensure_libs(self) -> float:
        """Resolve the broker jars with Maven once per version; returns seconds spent (0 when cached)."""
        pom = self.cfg.kafka_pom
        stamp = self.cfg.kafka_home / "libs.stamp"
        want = hashlib.sha256(pom.read_bytes() + self.cfg.kafka_version.encode()).hexdigest()
        if stamp.exists() and stamp.read_text().strip() == want and self.cfg.kafka_libs.is_dir():
            return 0.0
        with file_lock(self.cfg.kafka_home / "libs.lock"):
            if stamp.exists() and stamp.read_text().strip() == want and self.cfg.kafka_libs.is_dir():
                return 0.0
            t0 = time.monotonic()
            self._java()
            mvn = ensure_apt("mvn", "maven")
            tmp = self.cfg.kafka_home / "libs.tmp"
            if tmp.exists():
                shutil.rmtree(tmp)
            logging_profile = "log4j2" if self.cfg.kafka_major >= 4 else "reload4j"
            argv = [
                mvn,
                "-B",
                "-q",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-Dkafka.version={self.cfg.kafka_version}",
                f"-Dlogging={logging_profile}",
                f"-DoutputDirectory={tmp}",
            ]
            log.info("resolving Kafka jars from Maven Central %s", kv(version=self.cfg.kafka_version))
            self.cfg.kafka_home.mkdir(parents=True, exist_ok=True)
            res = subprocess.run(argv, cwd=self.cfg.kafka_home, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                raise InfraError(
                    f"Maven could not resolve Kafka {self.cfg.kafka_version} ({' '.join(argv)}):\n"
                    f"{(res.stdout + res.stderr)[-3000:]}"
                )
            if self.cfg.kafka_libs.exists():
                shutil.rmtree(self.cfg.kafka_libs)
            tmp.replace(self.cfg.kafka_libs)
            stamp.write_text(want + "\n")
            return time.monotonic() - t0

    def _cluster_id(self) -> str:
        """One id for every node of a cluster (made once, kept beside the node directories)."""
        if not self.clustered:
            return new_cluster_id()
        path = self.cfg.kafka_cluster_dir / "cluster.id"
        with file_lock(self.cfg.kafka_cluster_dir / "cluster.lock"):
            if not path.exists():
                path.write_text(new_cluster_id() + "\n")
            return path.read_text().strip()

    def prepare(self) -> None:
        self.ensure_libs()
        node = self.node_dir
        node.mkdir(parents=True, exist_ok=True)
        self.props_file.write_text(self.server_properties())
        self.log_config.write_text(self.log_properties())
        topology = node / "voters"
        if (self.data_dir / "meta.properties").exists():
            if topology.exists() and topology.read_text().strip() != self.cfg.kafka_voters:
                raise InfraError(
                    f"{self.name}: {self.data_dir} was formatted for voters {topology.read_text().strip()}, "
                    f"not {self.cfg.kafka_voters}; remove {node} or choose other ports"
                )
            return
        argv = [
            self._java(),
            *self._jvm_flags(heap="256m"),
            "-cp",
            self._classpath(),
            "kafka.tools.StorageTool",
            "format",
            # `=` form: an id may begin with '-' only if made elsewhere; argparse would read it as a flag.
            f"--cluster-id={self._cluster_id()}",
            "-c",
            str(self.props_file),
            "--ignore-formatted",
            *self.format_args(),
        ]
        res = subprocess.run(argv, cwd=node, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise InfraError(
                f"Kafka storage format failed ({res.returncode}):\n{(res.stdout + res.stderr)[-3000:]}"
            )
        topology.write_text(self.cfg.kafka_voters + "\n")
        log.debug("formatted %s", kv(server=self.name, data=self.data_dir))

    def format_args(self) -> list[str]:
        """Extra storage-format arguments (the secured broker's SCRAM users)."""
        return []

    def argv(self) -> list[str]:
        return [
            self._java(),
            *self._jvm_flags(),
            "-cp",
            self._classpath(),
            "kafka.Kafka",
            str(self.props_file),
        ]

    def responds(self) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.address, "log_level": 0})
        try:
            return bool(admin.list_topics(timeout=5).brokers)
        except Exception:
            return False

    def _running_log(self) -> Path:
        """Log of the broker running on our port, whatever version was configured when it started."""
        pid = self._pid()
        for a in cmdline(pid) if pid else []:
            if a.startswith("-Dkafka.logs.dir="):
                return Path(a.split("=", 1)[1]) / "kafka.log"
        return self.log_file

    def is_ready(self) -> bool:
        if not port_open(self.cfg.host, self.port):
            return False
        try:
            # The line is logged once per start; a rotated log means this file is the current run's.
            with self._running_log().open("rb") as f:
                return _KAFKA_READY.encode() in f.read()
        except OSError:
            return False


# --- Redis ---------------------------------------------------------------------------------------------
