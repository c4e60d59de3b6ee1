"""The interface every local server implements: status, up (idempotent, locked), down."""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from pathlib import Path

from tickwire.infra.config import InfraConfig
from tickwire.infra.process import (
    InfraError,
    ServerStatus,
    file_lock,
    owned_pid,
    port_open,
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
        return owned_pid(self.pid_file, self.owns)

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
                if self.reuse_external and self.responds():
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

    @property
    def reuse_external(self) -> bool:
        """Whether a working server of someone else's on our port may stand in for ours."""
        return True

    def env(self) -> dict[str, str] | None:
        return None

    def after_start(self) -> None:
        """Runs once after a start of ours is ready, still under the server's lock (raise InfraError)."""
        return None


# --- Kafka ---------------------------------------------------------------------------------------------
