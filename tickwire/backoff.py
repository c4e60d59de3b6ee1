"""The one retry policy: capped exponential backoff with full jitter, reset after a healthy period.

Every retry loop in tickwire (vendor reconnects, bridge writes, stream-runtime retries, the supervisor's
restarts) takes its delays from a ``Backoff``. Full jitter (uniform in [0, cap]) spreads many clients
reconnecting at once instead of synchronising them into waves against a recovering server.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    initial_s: float = 1.0  # cap of the first delay
    max_s: float = 60.0  # largest cap
    healthy_reset_s: float = 60.0  # a success lasting this long starts the sequence over
    attempt: int = 0
    _since: float | None = field(default=None, repr=False)

    def cap(self) -> float:
        return min(self.max_s, self.initial_s * 2.0**self.attempt)

    def next_delay(self, rng: random.Random | None = None) -> float:
        """The delay before the next try; each call doubles the cap up to ``max_s``."""
        delay = (rng or random).uniform(0.0, self.cap())
        self.attempt += 1
        self._since = None
        return delay

    def succeeded(self) -> None:
        """A try worked (connected, wrote): the sequence resets once it has stayed healthy long enough."""
        if self._since is None:
            self._since = time.monotonic()

    def check_healthy(self) -> bool:
        """Reset the sequence if the last success has lasted ``healthy_reset_s``; True when it did."""
        if self._since is not None and time.monotonic() - self._since >= self.healthy_reset_s:
            self.attempt = 0
            return True
        return False

    def reset(self) -> None:
        self.attempt = 0
        self._since = None
