"""One mechanism for every local server: detached start, pid file, readiness deadline, clean stop."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tickwire.logs import kv

log = logging.getLogger(__name__)


class InfraError(RuntimeError):
    """A server could not be installed, started or stopped; the message says why (with its log tail)."""


@dataclass(frozen=True)
class ServerStatus:
    name: str
    state: str  # running | stopped | foreign (port taken by a process we did not start) | stale
    address: str
    pid: int | None
    version: str | None
    log: Path | None


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own child not yet reaped) is not alive for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [p.decode(errors="replace") for p in raw.split(b"\0") if p]


def owned_pid(pid_file: Path, owns: Callable[[list[str]], bool]) -> int | None:
    """The live pid in ``pid_file`` whose command line ``owns`` accepts, else None: a pid file can outlive
    its process and the pid be recycled by an unrelated one."""
    pid = read_pid(pid_file)
    if pid is not None and pid_alive(pid) and owns(cmdline(pid)):
        return pid
    return None


def tail(path: Path, lines: int = 30) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(data.splitlines()[-lines:])


def rotate(log_file: Path) -> None:
    """Keep the previous run's log as <name>.1 so a fresh start has a readable log."""
    if log_file.exists():
        log_file.replace(log_file.with_name(log_file.name + ".1"))


def spawn(
    argv: Sequence[str], log_file: Path, pid_file: Path, cwd: Path, env: dict[str, str] | None = None
) -> int:
    """Start a server detached from our session (it outlives this CLI) with output to its log."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    rotate(log_file)
    with log_file.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    pid_file.write_text(f"{proc.pid}\n")
    log.debug("spawned %s", kv(pid=proc.pid, argv=" ".join(argv)))
    return proc.pid


def wait_ready(
    name: str,
    pid: int,
    ready: Callable[[], bool],
    log_file: Path,
    timeout: float,
) -> float:
    """Poll ``ready`` until it holds; fail fast with the log tail if the process dies or time runs out."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        if not pid_alive(pid):
            raise InfraError(
                f"{name} (pid {pid}) exited during start-up; last lines of {log_file}:\n{tail(log_file)}"
            )
        if ready():
            return time.monotonic() - t0
        if time.monotonic() > deadline:
            raise InfraError(
                f"{name} (pid {pid}) not ready after {timeout:.0f}s; "
                f"last lines of {log_file}:\n{tail(log_file)}"
            )
        time.sleep(0.1)


def stop_pid(name: str, pid: int, grace: float = 30.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    log.warning("%s did not stop within %.0fs, killing %s", name, grace, kv(pid=pid))
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    raise InfraError(f"{name} (pid {pid}) survived SIGKILL")


def _reap(pid: int) -> None:
    # Only reaps when the server is our own child (same CLI process started and stops it).
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


_apt_updated = False
_apt_lock = threading.Lock()  # dpkg takes one install at a time; servers start on threads


def find_binary(binary: str) -> str | None:
    # /usr/sbin is not on every PATH; Debian puts nats-server and redis-server in /usr/bin anyway.
    for cand in (shutil.which(binary), f"/usr/bin/{binary}", f"/usr/sbin/{binary}"):
        if cand and Path(cand).exists():
            return cand
    return None


def ensure_apt(binary: str, package: str) -> str:
    """Return the path of ``binary``, installing its Debian package when missing (we run as root).

    ``apt-get update`` runs at most once per process, and only when a plain install fails (fresh image).
    """
    found = find_binary(binary)
    if found:
        return found
    with _apt_lock:
        return _apt_install(binary, package)


def _apt_install(binary: str, package: str) -> str:
    global _apt_updated
    found = find_binary(binary)
    if found:
        return found
    if os.geteuid() != 0:
        raise InfraError(f"{binary} is missing: install the Debian package {package!r} (needs root)")
    log.info("installing %s", kv(package=package))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    res = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0 and not _apt_updated:
        upd = subprocess.run(
            ["apt-get", "update", "-q"], env=env, capture_output=True, text=True, check=False
        )
        _apt_updated = True
        if upd.returncode != 0:
            raise InfraError(
                f"apt-get update failed ({upd.returncode}):\n{upd.stdout[-2000:]}{upd.stderr[-2000:]}"
            )
        res = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise InfraError(
            f"{' '.join(install)} failed ({res.returncode}):\n{res.stdout[-2000:]}{res.stderr[-2000:]}"
        )
    found = find_binary(binary)
    if not found:
        raise InfraError(f"installed {package!r} but {binary} is still not found")
    return found


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialize start/stop of one server across processes (parallel test sessions start the same one)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free on ``host`` right now (for a server or test we start next)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
