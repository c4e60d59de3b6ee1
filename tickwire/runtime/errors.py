"""Errors the runtime raises or understands."""

from __future__ import annotations


class FatalRuntimeError(RuntimeError):
    """The worker cannot continue safely (fenced producer, fatal librdkafka error): exit non-zero.

    The supervisor restarts the process; the fresh process restores its state from the changelog and
    resumes from the committed offsets, which is right by construction.
    """


class RetryableError(Exception):
    """A sink handler's transient failure (an outage of the external system): retry the same batch."""


class Rollback(Exception):
    """Internal: the current transaction/cycle must be rolled back (abort, restore state, rewind)."""

    def __init__(self, reason: str, cause: BaseException | None = None) -> None:
        super().__init__(reason if cause is None else f"{reason}: {cause}")
        self.reason = reason
        self.cause = cause
