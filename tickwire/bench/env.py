"""The benchmark's surroundings: machine facts, child processes with RSS sampling, Kafka topic helpers,
waiting on metrics, and py-spy profiles of a running process."""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tickwire.bench.stats import rss_summary
from tickwire.contract.kafka_security import client_conf
from tickwire.logs import kv
from tickwire.topic_admin import ensure_topics

log = logging.getLogger(__name__)

PACKAGES = (
    "confluent-kafka",
    "fastavro",
    "msgspec",
    "orjson",
    "redis",
    "nats-py",
    "databento-dbn",
    "websockets",
    "websocket-client",
)


@dataclass(frozen=True)
class Servers:
    kafka: str
    redis_url: str
    nats_url: str
    versions: dict[str, str] = field(default_factory=dict)


def ensure_servers() -> Servers:
    """Server addresses from the environment, else the local servers (started or reused)."""
    env = os.environ
    versions: dict[str, str] = {}
    if all(k in env for k in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "NATS_URL")):
        return Servers(env["KAFKA_BOOTSTRAP_SERVERS"], env["REDIS_URL"], env["NATS_URL"], versions)
    from tickwire.infra.cli import status, up
    from tickwire.infra.config import load_config
    from tickwire.infra.process import port_open

    cfg = load_config()
    addrs = {"kafka": cfg.kafka_bootstrap, "redis": cfg.redis_url, "nats": cfg.nats_url}
    down = [name for name, a in addrs.items() if not _reachable(a, port_open)]
    if down:  # start only what does not answer; running servers are reused as they are
        up(cfg, down)
    with contextlib.suppress(Exception):
        for st in status(cfg):
            versions[st.name] = str(st.version or "")
    return Servers(
        env.get("KAFKA_BOOTSTRAP_SERVERS", cfg.kafka_bootstrap),
        env.get("REDIS_URL", cfg.redis_url),
        env.get("NATS_URL", cfg.nats_url),
        versions,
    )


def _reachable(addr: str, port_open: Callable[[str, int], bool]) -> bool:
    hostport = addr.split("://", 1)[-1].split("/", 1)[0].split(",", 1)[0]
    host, _, port = hostport.rpartition(":")
    return port.isdigit() and port_open(host or "127.0.0.1", int(port))


def machine_facts(servers: Servers) -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kib = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
    pkgs: dict[str, str | None] = {}
    for p in PACKAGES:
        try:
            pkgs[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            pkgs[p] = None
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "kafka": servers.versions.get("kafka") or "?",
        "redis": servers.versions.get("redis") or "?",
        "nats": servers.versions.get("nats") or "?",
        "packages": pkgs,
        "loadavg": loadavg(),
        "note": "machine shared with other processes; load averages are recorded per scenario",
    }


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def read_rss(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) in KiB from /proc/<pid>/status, None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    rss = hwm = 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return rss, hwm


class Proc:
    """A child process this benchmark started (own process group), its log file and RSS samples."""

    def __init__(
        self, name: str, argv: Sequence[str], log_dir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.p = subprocess.Popen(
            self.argv, stdout=self._log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True
        )
        self.started = time.monotonic()
        self.rss: list[int] = []
        self.hwm = 0
        self._sampling = True
        self._t = threading.Thread(target=self._sample, name=f"rss-{name}", daemon=True)
        self._t.start()

    @property
    def pid(self) -> int:
        return self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def _sample(self) -> None:
        while self._sampling:
            r = read_rss(self.p.pid)
            if r is None or self.p.poll() is not None:
                return
            self.rss.append(r[0])
            self.hwm = max(self.hwm, r[1])
            time.sleep(0.2)

    def memory(self) -> dict[str, float]:
        return rss_summary(self.rss, self.hwm)

    def output(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def tail(self, n: int = 15) -> str:
        return "\n".join(self.output().splitlines()[-n:])

    def wait(self, timeout: float) -> int | None:
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; this process only (never a broad kill)."""
        self._sampling = False
        if self.p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.p.kill()
                self.p.wait(5)
        self._log.close()
        return self.p.returncode


def tickwire_argv(*args: str) -> list[str]:
    """argv running a ``tickwire`` subcommand with this interpreter (RSS is the command's own process)."""
    return [sys.executable, "-m", "tickwire.cli", *args]


def wait_until(pred: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


# ---- Kafka -----------------------------------------------------------------------------------------


def create_topics(
    bootstrap: str, names: Iterable[str], partitions: int = 3, configs: dict[str, str] | None = None
) -> None:
    ensure_topics(bootstrap, dict.fromkeys(names, partitions), configs=configs)


def delete_prefixed(bootstrap: str, prefix: str) -> int:
    """Delete every topic whose name starts with ``prefix`` (the run's own topics); returns how many."""
    from confluent_kafka.admin import AdminClient

    if not prefix:
        raise ValueError("refusing to delete topics without a prefix")
    admin = AdminClient(client_conf(bootstrap))
    names = [t for t in admin.list_topics(timeout=15).topics if t.startswith(prefix)]
    if not names:
        return 0
    for f in admin.delete_topics(names, operation_timeout=30).values():
        with contextlib.suppress(Exception):
            f.result(30)
    return len(names)


def end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[str, int]:
    from tickwire.monitor import topic_end_offsets

    return topic_end_offsets(bootstrap, list(topics))


# ---- profiling -------------------------------------------------------------------------------------


def py_spy() -> str | None:
    exe = Path(sys.executable).parent / "py-spy"
    return str(exe) if exe.exists() else shutil.which("py-spy")


class Profile:
    """py-spy sampling a running process for ``seconds`` in the background (the caller keeps polling).

    ``result()`` waits for it and returns the top frames by own and total time (percent of samples) and
    the collapsed-stack file; errors are returned, never raised.
    """

    def __init__(self, pid: int, seconds: float, out_dir: Path, name: str) -> None:
        self.seconds = seconds
        self.out = out_dir / f"profile-{name}.txt"
        self.error: str | None = None
        self.p: subprocess.Popen[bytes] | None = None
        exe = py_spy()
        if exe is None:
            self.error = "py-spy not installed"
            return
        cmd = [
            exe,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, int(seconds))),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(self.out),
            "--nonblocking",
        ]
        self.p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def result(self, top: int = 25) -> dict[str, Any]:
        if self.p is None:
            return {"error": self.error}
        try:
            _, err = self.p.communicate(timeout=self.seconds + 30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.communicate()
            return {"error": "py-spy timed out"}
        if self.p.returncode != 0 or not self.out.exists():
            return {"error": f"py-spy failed: {err.decode(errors='replace')[-300:]}"}
        return summarize_collapsed(self.out.read_text(), top) | {"file": str(self.out)}


def summarize_collapsed(text: str, top: int = 25) -> dict[str, Any]:
    """Own-time and total-time shares per frame from py-spy's collapsed stacks ("a;b;c COUNT")."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    n = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        n += c
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + c
        for f in set(frames):
            total[f] = total.get(f, 0) + c
    if not n:
        return {"samples": 0}

    def share(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(f, round(100 * v / n, 1)) for f, v in sorted(d.items(), key=lambda kv_: -kv_[1])[:top]]

    return {"samples": n, "own_pct": share(own), "total_pct": share(total)}


def log_start(name: str, **fields: Any) -> None:
    log.info("bench %s %s", name, kv(**fields))
