"""The Docker engine the project's images and compose stack run on.

Resolution, in order: ``DOCKER_HOST`` when it answers; the system socket when it answers; else a private
``dockerd`` started here (Debian's ``docker.io`` installed when missing) with its own socket, data root
and exec root under ``<local>/docker`` and ``--bridge=none --iptables=false``: no bridge network, no
firewall rules, containers use the host's network (loopback). The private socket keeps the engine
invisible to tools that look for the system one (the test fixtures' testcontainers probe). An engine
found running is never stopped; one started here is stopped by whoever started it (``session``) or by
``stop`` when a marker says a long-lived start (``make deploy-up``) made it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tickwire.infra.config import InfraConfig
from tickwire.infra.process import (
    InfraError,
    ensure_apt,
    file_lock,
    owned_pid,
    spawn,
    stop_pid,
    tail,
    wait_ready,
)
from tickwire.logs import kv

log = logging.getLogger(__name__)

SYSTEM_SOCKET = Path("/var/run/docker.sock")
_POLICY_RC = Path("/usr/sbin/policy-rc.d")


def _ping(sock: Path, timeout: float = 2.0) -> bool:
    """GET /_ping on a unix socket: the engine answers ``OK``."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            data = s.recv(4096)
    except OSError:
        return False
    return data.startswith(b"HTTP/1.") and data.rstrip().endswith(b"OK")


@contextlib.contextmanager
def _no_service_start() -> Iterator[None]:
    """Debian's docker.io would start the system dockerd on install; a policy-rc.d saying 101 stops that."""
    if _POLICY_RC.exists():
        yield
        return
    _POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
    _POLICY_RC.chmod(0o755)
    try:
        yield
    finally:
        _POLICY_RC.unlink(missing_ok=True)


def ensure_tools() -> dict[str, str]:
    """Paths of dockerd, the docker CLI and docker-compose, installing the Debian packages when missing."""
    with _no_service_start():
        dockerd = ensure_apt("dockerd", "docker.io")
        compose = ensure_apt("docker-compose", "docker-compose")
    docker = ensure_apt("docker", "docker.io")
    return {"dockerd": dockerd, "docker": docker, "docker-compose": compose}


@dataclass(frozen=True)
class Engine:
    root: Path  # <local>/docker

    @classmethod
    def for_config(cls, cfg: InfraConfig) -> Engine:
        return cls(cfg.local_dir / "docker")

    @property
    def private_socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def pid_file(self) -> Path:
        return self.root / "dockerd.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "dockerd.log"

    @property
    def marker(self) -> Path:
        """Present while a long-lived start (deploy-up) owns the private engine."""
        return self.root / "started-for-deploy"

    def _env_socket(self) -> Path | None:
        host = os.environ.get("DOCKER_HOST", "")
        if host.startswith("unix://"):
            return Path(host[len("unix://") :])
        return None

    def socket_path(self) -> Path | None:
        """The socket of an engine that answers now, or None."""
        for cand in (self._env_socket(), SYSTEM_SOCKET, self.private_socket):
            if cand is not None and _ping(cand):
                return cand
        return None

    def env(self) -> dict[str, str]:
        """Environment for docker / docker-compose commands against the engine in use."""
        sock = self.socket_path()
        if sock is None:
            raise InfraError("no Docker engine is running (start one with Engine.start)")
        # The legacy builder: no BuildKit frontend image to pull (no registry is reachable).
        return dict(
            os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_BUILDKIT="0", COMPOSE_DOCKER_CLI_BUILD="0"
        )

    def ours(self) -> int | None:
        return owned_pid(self.pid_file, lambda argv: str(self.private_socket) in " ".join(argv))

    def start(self, timeout: float = 60.0) -> bool:
        """Make sure an engine answers; returns True when this call started the private one."""
        with file_lock(self.root / "dockerd.lock"):
            if self.socket_path() is not None:
                return False
            tools = ensure_tools()
            self.root.mkdir(parents=True, exist_ok=True)
            argv = [
                tools["dockerd"],
                f"--host=unix://{self.private_socket}",
                f"--data-root={self.root / 'data'}",
                f"--exec-root={self.root / 'exec'}",
                f"--pidfile={self.root / 'dockerd.daemon.pid'}",
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--log-level=warn",
            ]
            pid = spawn(argv, self.log_file, self.pid_file, cwd=self.root)
            log.info("started dockerd %s", kv(pid=pid, socket=self.private_socket))
            try:
                wait_ready("dockerd", pid, lambda: _ping(self.private_socket), self.log_file, timeout)
            except InfraError:
                stop_pid("dockerd", pid, grace=10)
                raise
            return True

    def stop(self) -> bool:
        """Stop the private engine if it is ours; returns True when it was stopped."""
        with file_lock(self.root / "dockerd.lock"):
            self.marker.unlink(missing_ok=True)
            pid = self.ours()
            if pid is None:
                return False
            stop_pid("dockerd", pid, grace=30)
            self.pid_file.unlink(missing_ok=True)
            log.info("stopped dockerd %s", kv(pid=pid))
            return True

    def run(self, argv: list[str], *, check: bool = True, capture: bool = False) -> str:
        """Run a docker / docker-compose command against the engine; output when ``capture``."""
        res = subprocess.run(argv, env=self.env(), capture_output=capture, text=True, check=False)
        if check and res.returncode != 0:
            out = (res.stdout or "") + (res.stderr or "") if capture else ""
            raise InfraError(f"{' '.join(argv)} exited {res.returncode}\n{out[-3000:]}")
        return res.stdout if capture else ""

    def describe(self) -> str:
        sock = self.socket_path()
        state = "not running" if sock is None else f"answers on {sock}"
        pid = self.ours()
        return f"docker engine {state}" + (f" (private, pid {pid}, log {self.log_file})" if pid else "")


@contextlib.contextmanager
def session(engine: Engine) -> Iterator[Engine]:
    """An engine for the duration of a block: started if none answers, stopped after if started here."""
    t0 = time.monotonic()
    started = engine.start()
    if started:
        log.info("docker engine up %s", kv(seconds=f"{time.monotonic() - t0:.1f}"))
    try:
        yield engine
    finally:
        if started and not engine.marker.exists():
            engine.stop()
        elif started:
            log.info("docker engine left running for the deploy %s", kv(marker=engine.marker))


def last_log_lines(engine: Engine) -> str:
    return tail(engine.log_file, 20)
