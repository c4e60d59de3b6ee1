"""A rolling-window rate limiter shared by every request of one API key (a sliding log, not a counter).

``limit`` calls are allowed in any ``window_s`` interval: a call is granted at time t only when fewer
than ``limit`` grants lie in (t - window_s, t], so no window anywhere on the time line ever holds more
than ``limit`` grants (a fixed-window counter allows 2x across a boundary). ``block(seconds)`` (a
throttle answer from the vendor) treats the window as full until then. Clock and sleep are injectable:
unit tests run on a fake clock without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RollingLimiter:
    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._grants: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()
        self.granted = 0  # total grants
        self.waited_s = 0.0  # total time callers were told to wait (first wait of each acquire)
        self.blocks = 0  # throttle blocks applied

    def _expire(self, now: float) -> None:
        horizon = now - self.window_s
        while self._grants and self._grants[0] <= horizon:
            self._grants.popleft()

    def try_acquire(self) -> float:
        """Grant one call now (returns 0.0) or return how long to wait before asking again."""
        with self._lock:
            now = self._clock()
            if now < self._blocked_until:
                return self._blocked_until - now
            self._expire(now)
            if len(self._grants) < self.limit:
                self._grants.append(now)
                self.granted += 1
                return 0.0
            # The oldest grant leaves the window at grants[0] + window_s (strictly after it).
            return max(1e-3, self._grants[0] + self.window_s - now)

    def acquire(self, sleep: Callable[[float], bool], max_wait_s: float = 0.5) -> bool:
        """Block until granted; ``sleep(s)`` returns True when the caller is stopping (then: False)."""
        first = True
        while True:
            wait = self.try_acquire()
            if wait <= 0.0:
                return True
            if first:
                self.waited_s += wait
                first = False
            if sleep(min(wait, max_wait_s)):
                return False

    def block(self, seconds: float) -> None:
        """Treat the window as full for ``seconds`` (the vendor said: too many calls)."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + seconds)
            self.blocks += 1

    def used(self) -> int:
        """Grants inside the current window."""
        with self._lock:
            self._expire(self._clock())
            return len(self._grants)

    def tokens_left(self) -> int:
        with self._lock:
            now = self._clock()
            if now < self._blocked_until:
                return 0
            self._expire(now)
            return self.limit - len(self._grants)

    def blocked_for(self) -> float:
        with self._lock:
            return max(0.0, self._blocked_until - self._clock())
