"""Redis and NATS JetStream from Debian packages (apt-installed when missing)."""

from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
from pathlib import Path

from tickwire.infra.process import (
    ensure_apt,
    find_binary,
)
from tickwire.infra.server_base import Server

log = logging.getLogger(__name__)


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
