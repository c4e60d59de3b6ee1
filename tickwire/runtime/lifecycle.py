"""Graceful stop: SIGTERM/SIGINT ask a worker to finish its batch, commit and leave the group."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any, Protocol

from tickwire.logs import kv

log = logging.getLogger(__name__)


class Stoppable(Protocol):
    def stop(self) -> None: ...


def install_signal_handlers(worker: Stoppable) -> None:
    """Route SIGTERM and SIGINT to ``worker.stop()`` (main thread only; a no-op elsewhere).

    A second signal while stopping is not special-cased: stop() is idempotent, and a supervisor that
    wants the process gone sends SIGKILL, which exactly-once survives by construction.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: Any) -> None:
        log.info("stop requested %s", kv(signal=signal.Signals(signum).name))
        worker.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
