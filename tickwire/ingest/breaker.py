"""A circuit breaker per polled feed: closed -> open (suspended) -> half-open probe -> closed.

``threshold`` consecutive failed polls open the breaker: the feed is suspended for a delay from the one
backoff policy (``tickwire.backoff.Backoff``: the cap doubles per trip up to ``max_s``; the delay is drawn
in [cap/2, cap], so suspensions grow but never collapse to ~0). When the delay is over, one probe is let
through (half-open): success closes the breaker and resets the sequence, failure re-opens it with the
next, longer delay.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tickwire.backoff import Backoff

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(slots=True)
class _State:
    backoff: Backoff
    state: str = CLOSED
    failures: int = 0  # consecutive
    open_until: float = 0.0
    trips: int = 0
    last_outcome: str = ""
    probe_out: bool = field(default=False)


class Breakers:
    """One breaker per feed name, thread-safe."""

    def __init__(
        self,
        threshold: int,
        initial_s: float,
        max_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if threshold < 1:
            raise ValueError(f"threshold must be >= 1, got {threshold}")
        self.threshold = threshold
        self.initial_s, self.max_s = initial_s, max_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._s: dict[str, _State] = {}
        self._lock = threading.Lock()

    def _get(self, feed: str) -> _State:
        st = self._s.get(feed)
        if st is None:
            st = self._s[feed] = _State(Backoff(self.initial_s, self.max_s, healthy_reset_s=float("inf")))
        return st

    def allow(self, feed: str) -> bool:
        """May ``feed`` be polled now? An open breaker whose delay is over lets exactly one probe through."""
        with self._lock:
            st = self._get(feed)
            if st.state == CLOSED:
                return True
            if st.state == OPEN and self._clock() >= st.open_until:
                st.state, st.probe_out = HALF_OPEN, True
                return True
            if st.state == HALF_OPEN and not st.probe_out:
                st.probe_out = True
                return True
            return False

    def resume_at(self, feed: str) -> float:
        """When an open breaker lets its probe through (0.0 when closed)."""
        with self._lock:
            st = self._get(feed)
            return st.open_until if st.state == OPEN else 0.0

    def success(self, feed: str) -> bool:
        """Record a successful poll; True when it closed an open/half-open breaker (the feed resumed)."""
        with self._lock:
            st = self._get(feed)
            resumed = st.state != CLOSED
            st.state, st.failures, st.probe_out, st.last_outcome = CLOSED, 0, False, "data"
            st.backoff.reset()
            return resumed

    def failure(self, feed: str, outcome: str) -> float | None:
        """Record a failed poll; returns the suspension delay when this failure opened the breaker."""
        with self._lock:
            st = self._get(feed)
            st.failures += 1
            st.last_outcome = outcome
            st.probe_out = False
            if st.state == CLOSED and st.failures < self.threshold:
                return None
            cap = st.backoff.cap()
            delay = cap / 2 + st.backoff.next_delay(self._rng) / 2
            st.state, st.open_until = OPEN, self._clock() + delay
            st.trips += 1
            return delay

    def state(self, feed: str) -> str:
        with self._lock:
            return self._get(feed).state

    def suspended(self) -> list[str]:
        """Feeds whose breaker is not closed, sorted."""
        with self._lock:
            return sorted(f for f, st in self._s.items() if st.state != CLOSED)

    def snapshot(self) -> dict[str, dict[str, object]]:
        with self._lock:
            return {
                f: {"state": st.state, "failures": st.failures, "trips": st.trips, "last": st.last_outcome}
                for f, st in sorted(self._s.items())
            }
