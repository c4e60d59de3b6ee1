"""The vendor-facing side of a polled REST producer: what a vendor adapter gives the one REST poller.

A REST adapter names its feeds (one request each, polled at its own interval), builds each feed's URL
(credentials included: the poller never logs or publishes a URL) and classifies every response body. The
poller (``tickwire.ingest.rest_poller``) owns scheduling, the shared rate limiter, retries, the circuit
breaker per feed and publishing: every response body goes raw, with the request's parameters (never
credentials), the HTTP status and the outcome in the context header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Self

from pydantic import model_validator
from pydantic_settings import SettingsConfigDict

from tickwire.contract.settings import IngestSettings

DATA = "data"  # the one outcome that counts as a success


@dataclass(frozen=True, slots=True)
class RestFeed:
    """One polled request: ``feed`` names it in metrics, logs and the breaker (e.g. ``IBM:options``)."""

    feed: str
    stream: str  # envelope stream of its raw records
    key: str  # raw record key (the symbol)
    params: tuple[tuple[str, str], ...]  # query parameters in the order sent, credentials excluded
    interval_s: float


class RestAdapter(Protocol):
    source: str
    content_type: str
    # Failure outcomes worth an immediate retry (with backoff); others go straight to the breaker.
    retryable: frozenset[str]
    # Outcomes that mean "slow down": the shared limiter treats its window as full for a while.
    throttles: frozenset[str]

    def feeds(self) -> list[RestFeed]: ...

    def url(self, feed: RestFeed) -> str:
        """The full request URL, credentials included: never logged, printed or published."""
        ...

    def classify(self, status: int, body: bytes) -> str:
        """``DATA`` or the failure outcome of one response (HTTP status and body as received)."""
        ...


class RestIngestSettings(IngestSettings):
    """Knobs of the REST poller; a polled vendor's settings class subclasses this with its env prefix."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    rate_limit_calls: int = 600  # calls allowed per window by the vendor plan, per key
    rate_limit_buffer: int = 10  # kept in reserve: usable = calls - buffer
    rate_window_s: float = 60.0
    # Added to the window the limiter enforces: covers the spread of request send latency, so the
    # vendor's clock sees no window over the limit either.
    rate_margin_s: float = 0.25
    throttle_cooldown_s: float = 15.0  # a throttle answer: no new calls for this long
    interval_jitter: float = 0.1  # each interval is scaled by a uniform factor in [1 - j, 1 + j]
    retries: int = 2  # immediate retries of a retryable failure within one poll
    retry_initial_s: float = 1.0
    retry_max_s: float = 8.0
    breaker_threshold: int = 5  # consecutive failed polls of a feed before it is suspended
    failure_backoff_initial_s: float = 30.0
    failure_backoff_max: float = 600.0  # largest suspension, seconds
    concurrency: int = 4  # requests in flight at once

    @model_validator(mode="after")
    def _usable_calls(self) -> Self:
        if self.rate_limit_calls - self.rate_limit_buffer < 1:
            raise ValueError("rate_limit_calls - rate_limit_buffer must leave at least one call per window")
        if self.breaker_threshold < 1 or self.concurrency < 1 or self.retries < 0:
            raise ValueError("breaker_threshold and concurrency must be >= 1, retries >= 0")
        return self
