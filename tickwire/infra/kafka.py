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
_VERSION_IN_PATH = re.compile(r"/kafka-([0-9][^/]*)/libs/")


class Kafka(Server):
    name = "kafka"
    port_env = "TICKWIRE_KAFKA_PORT"

    @property
    def port(self) -> int:
        return self.cfg.kafka_port

    @property
    def log_file(self) -> Path:
        return self.cfg.kafka_node_dir / "kafka.log"

    @property
    def data_dir(self) -> Path:
        return self.cfg.kafka_node_dir / "data"

    @property
    def props_file(self) -> Path:
        return self.cfg.kafka_node_dir / "server.properties"

    @property
    def log_config(self) -> Path:
        return self.cfg.kafka_node_dir / (
            "log4j2.properties" if self.cfg.kafka_major >= 4 else "log4j.properties"
        )

    def owns(self, argv: list[str]) -> bool:
        return "kafka.Kafka" in argv and any(a.endswith(f"/node-{self.port}/server.properties") for a in argv)

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
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{c.host}:{c.kafka_controller_port}",
            "listeners": f"PLAINTEXT://{c.host}:{c.kafka_port},CONTROLLER://{c.host}:{c.kafka_controller_port}",
            "advertised.listeners": f"PLAINTEXT://{c.host}:{c.kafka_port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            # Single node: every internal topic has one replica; few partitions keep the first
            # consumer-group join and the first transaction fast.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            # faust creates its internal topics itself, but auto-creation keeps ad-hoc tools simple.
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "log.retention.check.interval.ms": "60000",
        }
        if c.kafka_major >= 4:
            props |= {
                "share.coordinator.state.topic.replication.factor": "1",
                "share.coordinator.state.topic.min.isr": "1",
                "share.coordinator.state.topic.num.partitions": "1",
            }
        return "".join(f"{k}={v}\n" for k, v in props.items())

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
            f"-Dkafka.logs.dir={self.cfg.kafka_node_dir}",
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

    def prepare(self) -> None:
        self.ensure_libs()
        node = self.cfg.kafka_node_dir
        node.mkdir(parents=True, exist_ok=True)
        self.props_file.write_text(self.server_properties())
        self.log_config.write_text(_LOG4J2 if self.cfg.kafka_major >= 4 else _LOG4J1)
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        argv = [
            self._java(),
            *self._jvm_flags(heap="256m"),
            "-cp",
            self._classpath(),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(self.props_file),
            "--ignore-formatted",
        ]
        res = subprocess.run(argv, cwd=node, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise InfraError(
                f"Kafka storage format failed ({res.returncode}):\n{(res.stdout + res.stderr)[-3000:]}"
            )

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
