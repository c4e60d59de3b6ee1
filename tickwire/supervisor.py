"""A small process supervisor: start components in order, restart the dead with backoff, stop in reverse.

Vendor-neutral: a component is a name, an argv and an environment. `tickwire run` builds the list.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tickwire.backoff import Backoff
from tickwire.logs import kv

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGTERM if the supervisor dies (even SIGKILL),
    so no component outlives it. Linux only; elsewhere the supervisor's own signal handling must do."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    argv: Sequence[str]
    kind: str  # simulator | producer | normalizer | bridge
    env: dict[str, str] = field(default_factory=dict)
    metrics_port: int | None = None
    # A component that exits 0 on its own (e.g. a one-shot replay) is done, not dead.
    one_shot: bool = False


@dataclass
class ComponentState:
    spec: ComponentSpec
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    deaths: int = 0
    last_exit: int | None = None
    next_start: float = 0.0
    done: bool = False

    @property
    def state(self) -> str:
        if self.done:
            return "done"
        if self.proc is not None and self.proc.poll() is None:
            return "running"
        return "restarting" if self.deaths else "stopped"


class Supervisor:
    """Runs components as child processes; logs go to one file per component."""

    def __init__(
        self,
        specs: Sequence[ComponentSpec],
        log_dir: Path,
        *,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        healthy_after: float = 30.0,
    ) -> None:
        self.states = [ComponentState(s) for s in specs]
        self.log_dir = log_dir
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.healthy_after = healthy_after
        self._backoffs: dict[str, Backoff] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _spawn(self, st: ComponentState) -> None:
        env = {**os.environ, **st.spec.env}
        logf = self.log_path(st.spec.name).open("ab")
        st.proc = subprocess.Popen(
            list(st.spec.argv),
            env=env,
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # our Ctrl-C does not reach children; we stop them in order
            preexec_fn=_die_with_parent,
        )
        logf.close()
        st.started_at = time.monotonic()
        log.info("started %s", kv(component=st.spec.name, pid=st.proc.pid))

    def _backoff(self, name: str) -> Backoff:
        b = self._backoffs.get(name)
        if b is None:
            b = self._backoffs[name] = Backoff(self.backoff_initial, self.backoff_max, self.healthy_after)
        return b

    def start_all(self, settle: float = 0.0) -> None:
        for st in self.states:
            self._spawn(st)
            if settle:
                time.sleep(settle)

    def check(self) -> list[str]:
        """Reap dead components and restart them with capped, jittered backoff. Returns events."""
        events: list[str] = []
        now = time.monotonic()
        for st in self.states:
            if st.done:
                continue
            if st.proc is not None:
                rc = st.proc.poll()
                if rc is None:
                    if now - st.started_at > self.healthy_after:
                        self._backoff(st.spec.name).reset()
                    continue
                st.proc = None
                st.last_exit = rc
                if rc == 0 and st.spec.one_shot:
                    st.done = True
                    events.append(f"{st.spec.name} finished")
                    continue
                st.deaths += 1
                delay = self._backoff(st.spec.name).next_delay()
                st.next_start = now + delay
                events.append(f"{st.spec.name} died rc={rc}; restart in {delay:.1f}s")
                log.warning("died %s", kv(component=st.spec.name, rc=rc, restart_in=f"{delay:.1f}s"))
            elif now >= st.next_start:
                st.restarts += 1
                self._spawn(st)
                events.append(f"{st.spec.name} restarted")
        return events

    def stop_all(self, timeout: float = 15.0) -> None:
        """SIGTERM in reverse start order (consumers before producers before simulators)."""
        for st in reversed(self.states):
            p = st.proc
            if p is None or p.poll() is not None:
                continue
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("kill %s", kv(component=st.spec.name, reason="no exit after SIGTERM"))
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)

    def tail(self, name: str, lines: int = 15) -> str:
        path = self.log_path(name)
        if not path.exists():
            return ""
        data = path.read_bytes()[-16384:].decode(errors="replace").splitlines()
        return "\n".join(data[-lines:])
