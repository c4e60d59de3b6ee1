"""The FIX LP peer: QuickFIX/J 2.3.2 (``lp/LpSim.java``), built by the project like the Kafka jars.

``ensure_built`` resolves ``quickfixj-core`` + ``quickfixj-messages-fix44`` 2.3.2 from Maven Central with
``lp/pom.xml`` and compiles ``lp/*.java`` with ``javac`` into ``<local dir>/fix-lp-2.3.2/`` (git-ignored),
once per pom + source content (a stamp). Maven and a JDK are installed from Debian when missing.
``LpProcess`` runs one acceptor (a real engine with ``UseDataDictionary=Y``) and talks to its line-based
control port (``LpProcess.command``): faults and status, see the header of ``LpSim.java``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tickwire.infra.config import load_config
from tickwire.infra.process import InfraError, ensure_apt, file_lock, free_port, tail
from tickwire.logs import kv

log = logging.getLogger(__name__)

QUICKFIXJ_VERSION = "2.3.2"
SRC = Path(__file__).with_name("lp")
POM = SRC / "pom.xml"
JAVA = (SRC / "LpSim.java", SRC / "LpControl.java")


def home(local_dir: Path | None = None) -> Path:
    return (local_dir or load_config().local_dir) / f"fix-lp-{QUICKFIXJ_VERSION}"


def ensure_built(local_dir: Path | None = None) -> str:
    """The Java classpath of the LP, building it first when the pom or the source changed."""
    h = home(local_dir)
    stamp = h / "build.stamp"
    want = hashlib.sha256(POM.read_bytes() + b"".join(j.read_bytes() for j in JAVA)).hexdigest()
    cp = f"{h / 'classes'}:{h / 'libs'}/*"
    if stamp.exists() and stamp.read_text().strip() == want:
        return cp
    with file_lock(h / "build.lock"):
        if stamp.exists() and stamp.read_text().strip() == want:
            return cp
        t0 = time.monotonic()
        mvn = ensure_apt("mvn", "maven")
        javac = ensure_apt("javac", "openjdk-17-jdk-headless")
        for d in ("libs.tmp", "classes.tmp"):
            shutil.rmtree(h / d, ignore_errors=True)
        shutil.copy(POM, h / "pom.xml")  # Maven's target/ then lands in the git-ignored home
        log.info("resolving QuickFIX/J from Maven Central %s", kv(version=QUICKFIXJ_VERSION))
        _run([mvn, "-B", "-q", "-f", str(h / "pom.xml"), "dependency:copy-dependencies",
              f"-DoutputDirectory={h / 'libs.tmp'}"], h, "Maven could not resolve QuickFIX/J")  # fmt: skip
        _run([javac, "--release", "17", "-nowarn", "-d", str(h / "classes.tmp"),
              "-cp", f"{h / 'libs.tmp'}/*", *map(str, JAVA)], h, "javac failed on the LP")  # fmt: skip
        for d in ("libs", "classes"):
            shutil.rmtree(h / d, ignore_errors=True)
            (h / f"{d}.tmp").replace(h / d)
        stamp.write_text(want + "\n")
        log.info("FIX LP built %s", kv(seconds=f"{time.monotonic() - t0:.1f}", home=h))
    return cp


def _run(argv: list[str], cwd: Path, what: str) -> None:
    res = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise InfraError(f"{what} ({' '.join(argv)}):\n{(res.stdout + res.stderr)[-3000:]}")


class LpProcess:
    """One QuickFIX/J acceptor process with its control channel."""

    def __init__(
        self,
        *,
        port: int = 0,
        control_port: int = 0,
        host: str = "127.0.0.1",
        sender: str = "LP_ALPHA",
        targets: Sequence[str] = ("TICKWIRE",),
        symbols: str = "EUR/USD=1.08215,GBP/USD=1.26530,USD/JPY=151.205",
        rate: float = 2.0,
        seed: int = 1,
        store: str = "memory",
        log_file: Path | None = None,
        local_dir: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.control_port = control_port or free_port(host)
        self.sender = sender
        self.targets = list(targets)
        self.args = {"symbols": symbols, "rate": str(rate), "seed": str(seed), "store": store}
        self.local_dir = local_dir
        self.log_file = log_file or home(local_dir) / f"lp-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._ctl: socket.socket | None = None
        self._ctl_buf = b""

    @property
    def url(self) -> str:
        return f"fix://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> LpProcess:
        cp = ensure_built(self.local_dir)
        java = ensure_apt("java", "openjdk-17-jre-headless")
        argv = [java, "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", cp,
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=info", "-Dorg.slf4j.simpleLogger.showDateTime=true",
                "LpSim", "--host", self.host, "--port", str(self.port),
                "--control-port", str(self.control_port),
                "--sender", self.sender, "--targets", ",".join(self.targets),
                "--parent-pid", str(os.getpid())]  # fmt: skip
        for k, v in self.args.items():
            argv += [f"--{k}", v]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            start = out.tell()  # the log is appended to: look for this run's ready line only
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while b"LP READY" not in self.log_file.read_bytes()[start:]:
            if self.proc.poll() is not None:
                raise InfraError(f"FIX LP exited during start-up:\n{tail(self.log_file)}")
            if time.monotonic() > deadline:
                self.stop()
                raise InfraError(f"FIX LP not ready after {timeout:.0f}s:\n{tail(self.log_file)}")
            time.sleep(0.05)
        log.info("FIX LP listening %s", kv(url=self.url, control=self.control_port, pid=self.proc.pid))
        return self

    def stop(self) -> None:
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> LpProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def command(self, line: str, timeout: float = 15.0) -> dict[str, Any]:
        """Send one control command; returns its JSON answer (raises on ``ok: false``)."""
        if self._ctl is None:
            self._ctl = socket.create_connection((self.host, self.control_port), timeout=timeout)
        self._ctl.settimeout(timeout)
        self._ctl.sendall(line.encode() + b"\n")
        while b"\n" not in self._ctl_buf:
            chunk = self._ctl.recv(65536)
            if not chunk:
                raise ConnectionError("FIX LP control channel closed")
            self._ctl_buf += chunk
        answer, _, self._ctl_buf = self._ctl_buf.partition(b"\n")
        reply: dict[str, Any] = json.loads(answer)
        if not reply.get("ok"):
            raise RuntimeError(f"LP command {line!r} failed: {reply.get('error')}")
        return reply

    def status(self, target: str) -> dict[str, Any]:
        return self.command(f"status {target}")

    def sent(self, target: str, first: int, last: int) -> list[bytes]:
        """The messages the LP sent to ``target`` with MsgSeqNum first..last, as stored by QuickFIX/J."""
        return [m.encode("latin-1") for m in self.command(f"sent {target} {first} {last}")["messages"]]
