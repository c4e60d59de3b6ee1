"""The one REST polling mechanism for rate-limited vendors: schedule, limit, retry, break, publish raw.

Each feed of a ``RestAdapter`` (one request: a symbol and a data type) is polled at its own interval,
scaled by a uniform jitter factor. Every call takes a grant from one ``RollingLimiter`` shared by all
feeds of the key (``rate_limit_calls - rate_limit_buffer`` per ``rate_window_s``); a throttle answer
blocks the limiter for ``throttle_cooldown_s``. A retryable failure (transport error, HTTP 5xx, throttle,
malformed body: the adapter says which) is retried up to ``retries`` times with capped, fully jittered
backoff; a poll that still fails counts against the feed's circuit breaker (``tickwire.ingest.breaker``).
Every response body goes raw, untouched, with the request context (``function`` and the other
parameters, ``http_status``, ``outcome``; never credentials, never the URL). Clock, sleep, wall clock
and HTTP are injectable: ``tick()`` polls what is due synchronously for deterministic unit tests.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter as Tally
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from prometheus_client import Counter, Gauge

from tickwire import __version__
from tickwire.backoff import Backoff
from tickwire.contract.adapter import ConfigError
from tickwire.contract.envelope import context_header
from tickwire.contract.rest import DATA, RestAdapter, RestFeed, RestIngestSettings
from tickwire.ingest.breaker import Breakers
from tickwire.ingest.rate_limit import RollingLimiter
from tickwire.logs import kv

log = logging.getLogger(__name__)

TRANSPORT = "transport"  # no response at all (refused, reset, timed out): nothing to publish
STOPPED = "stopped"
_P = "tickwire_ingest_rest_"
CALLS = Counter(_P + "calls", "REST calls by outcome", ["source", "stream", "outcome"])
SUSPENSIONS = Counter(_P + "suspensions", "Feeds suspended by their circuit breaker", ["source"])
TOKENS_LEFT = Gauge(_P + "tokens_left", "Calls the rate limiter can grant now", ["source"])
LIMIT = Gauge(_P + "limit", "Usable calls per limiter window", ["source"])
CALLS_PER_MIN = Gauge(_P + "calls_per_minute", "Calls made in the last 60 s", ["source"])
SUSPENDED = Gauge(_P + "suspended_feeds", "Feeds whose breaker is open or half-open", ["source"])
SUSPENDED_FEED = Gauge(_P + "feed_suspended", "1 while this feed is suspended", ["source", "feed"])

Http = Callable[[str, float], tuple[int, bytes]]


class Publish(Protocol):
    def __call__(
        self,
        frame: bytes,
        ts_recv: int,
        *,
        stream: str,
        key: str | None,
        extra_headers: list[tuple[str, bytes]],
    ) -> int: ...


def http_get(url: str, timeout: float) -> tuple[int, bytes]:
    """(status, body) of a GET; an HTTP error status is an answer too (its body is published)."""
    req = urllib.request.Request(url, headers={"User-Agent": f"tickwire/{__version__}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), bytes(exc.read())


def _safe_error(exc: BaseException, url: str) -> str:
    """An exception's text with the URL (and so any credential in it) cut out."""
    text = f"{type(exc).__name__}: {exc}"
    query = url.partition("?")[2]
    for secret in (url, query):
        if secret:
            text = text.replace(secret, "<request>")
    return text


class RestPoller:
    def __init__(
        self,
        adapter: RestAdapter,
        settings: RestIngestSettings,
        publish: Publish,
        *,
        http: Http = http_get,
        clock: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], bool] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        s = self.s = settings
        self.adapter = adapter
        self.source = adapter.source
        self._publish = publish
        self._http = http
        self._clock = clock
        self._wall_ns = wall_ns
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait  # returns True when stopping
        self._rng = rng or random.Random()
        usable = s.rate_limit_calls - s.rate_limit_buffer
        if usable < 1:
            raise ConfigError(f"rate_limit_calls - rate_limit_buffer must be >= 1, got {usable}")
        self.limiter = RollingLimiter(usable, s.rate_window_s + s.rate_margin_s, clock=clock)
        self.breakers = Breakers(
            s.breaker_threshold,
            s.failure_backoff_initial_s,
            s.failure_backoff_max,
            clock=clock,
            rng=self._rng,
        )
        self.feeds = {f.feed: f for f in adapter.feeds()}
        now = clock()
        # The first round is spread over the first jitter fraction of each interval, not fired at once.
        self._next = {
            f.feed: now + self._rng.uniform(0, f.interval_s * s.interval_jitter) for f in self.feeds.values()
        }
        self._inflight: set[str] = set()
        self._lock = threading.Lock()
        self._recent: deque[float] = deque()  # call times of the last 60 s
        self.outcomes: Tally[str] = Tally()
        self.polls = 0
        self.last_data_ns: int | None = None
        LIMIT.labels(self.source).set(usable)

    # ------------------------------------------------------------------ one poll
    def poll(self, feed: RestFeed) -> str:
        """One poll of ``feed`` with its retries; returns the final outcome (``DATA`` on success)."""
        backoff = Backoff(self.s.retry_initial_s, self.s.retry_max_s)
        outcome = STOPPED
        for attempt in range(self.s.retries + 1):
            if not self.limiter.acquire(self._sleep):
                return STOPPED
            outcome = self._call(feed, attempt)
            if outcome == DATA:
                if self.breakers.success(feed.feed):
                    log.info("feed resumed %s", kv(source=self.source, feed=feed.feed))
                return DATA
            if outcome in self.adapter.throttles:
                self.limiter.block(self.s.throttle_cooldown_s)
                log.warning(
                    "throttled by vendor, limiter blocked %s",
                    kv(source=self.source, feed=feed.feed, seconds=self.s.throttle_cooldown_s),
                )
            retryable = outcome == TRANSPORT or outcome in self.adapter.retryable
            if not retryable or attempt == self.s.retries:
                break
            if self._sleep(backoff.next_delay(self._rng)):
                return STOPPED
        delay = self.breakers.failure(feed.feed, outcome)
        if delay is not None:
            SUSPENSIONS.labels(self.source).inc()
            log.warning(
                "feed suspended %s",
                kv(source=self.source, feed=feed.feed, outcome=outcome, seconds=f"{delay:.1f}"),
            )
        return outcome

    def _call(self, feed: RestFeed, attempt: int) -> str:
        url = self.adapter.url(feed)
        with self._lock:
            self.polls += 1
            self._recent.append(self._clock())
        try:
            status, body = self._http(url, self.s.rest_timeout_s)
        except Exception as exc:
            CALLS.labels(self.source, feed.stream, TRANSPORT).inc()
            self._count(TRANSPORT)
            log.warning(
                "request failed %s",
                kv(source=self.source, feed=feed.feed, attempt=attempt + 1, error=_safe_error(exc, url)),
            )
            return TRANSPORT
        ts_recv = self._wall_ns()
        try:
            outcome = self.adapter.classify(status, body)
        except Exception:  # bad input never stops the poller: the body still goes raw
            log.exception("classify failed %s", kv(source=self.source, feed=feed.feed))
            outcome = "malformed"
        ctx: dict[str, str | int] = {**dict(feed.params), "http_status": status, "outcome": outcome}
        self._publish(body, ts_recv, stream=feed.stream, key=feed.key, extra_headers=[context_header(ctx)])
        CALLS.labels(self.source, feed.stream, outcome).inc()
        self._count(outcome)
        if outcome == DATA:
            self.last_data_ns = ts_recv
        else:
            log.info(
                "non-data answer %s",
                kv(source=self.source, feed=feed.feed, status=status, outcome=outcome, attempt=attempt + 1),
            )
        return outcome

    def _count(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] += 1

    # ---------------------------------------------------------------- schedule
    def _reschedule(self, feed: RestFeed) -> None:
        j = self.s.interval_jitter
        with self._lock:
            self._next[feed.feed] = self._clock() + feed.interval_s * self._rng.uniform(1 - j, 1 + j)

    def _due(self, limit: int | None = None) -> list[RestFeed]:
        """Feeds due now (most overdue first) whose breaker lets them through."""
        now = self._clock()
        with self._lock:
            cands = sorted((t, f) for f, t in self._next.items() if t <= now and f not in self._inflight)
        out: list[RestFeed] = []
        for _, name in cands:
            if limit is not None and len(out) >= limit:
                break
            if self.breakers.allow(name):
                out.append(self.feeds[name])
            else:
                with self._lock:  # suspended: look again when its breaker lets a probe through
                    self._next[name] = max(self._next[name], self.breakers.resume_at(name))
        return out

    def next_due(self) -> float:
        with self._lock:
            pending = [t for f, t in self._next.items() if f not in self._inflight]
        return min(pending, default=self._clock() + 1.0)

    def tick(self) -> list[tuple[str, str]]:
        """Poll every due feed now, one after the other; returns (feed, outcome) pairs."""
        done = []
        for feed in self._due():
            done.append((feed.feed, self.poll(feed)))
            self._reschedule(feed)
        self.update_gauges()
        return done

    def _job(self, feed: RestFeed) -> None:
        try:
            self.poll(feed)
        except Exception:
            log.exception("poll failed %s", kv(source=self.source, feed=feed.feed))
        finally:
            self._reschedule(feed)
            with self._lock:
                self._inflight.discard(feed.feed)

    def run(self, check: Callable[[], None] | None = None) -> None:
        """Poll until ``stop()``, up to ``concurrency`` requests in flight; ``check()`` runs every loop and
        ends the run by raising (e.g. a fatal producer error)."""
        log.info("polling %s", kv(source=self.source, feeds=len(self.feeds), limit=self.limiter.limit))
        with ThreadPoolExecutor(self.s.concurrency, thread_name_prefix="rest") as pool:
            while not self._stop.is_set():
                if check is not None:
                    try:
                        check()
                    except BaseException:
                        self.stop()  # in-flight polls end at their next wait
                        raise
                with self._lock:
                    room = self.s.concurrency - len(self._inflight)
                for feed in self._due(room) if room > 0 else []:
                    with self._lock:
                        self._inflight.add(feed.feed)
                    pool.submit(self._job, feed)
                self.update_gauges()
                self._stop.wait(max(0.01, min(0.25, self.next_due() - self._clock())))

    def stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------- stats
    def calls_per_minute(self) -> int:
        with self._lock:
            horizon = self._clock() - 60.0
            while self._recent and self._recent[0] <= horizon:
                self._recent.popleft()
            return len(self._recent)

    def update_gauges(self) -> None:
        TOKENS_LEFT.labels(self.source).set(self.limiter.tokens_left())
        CALLS_PER_MIN.labels(self.source).set(self.calls_per_minute())
        suspended = set(self.breakers.suspended())
        SUSPENDED.labels(self.source).set(len(suspended))
        for name in self.feeds:
            SUSPENDED_FEED.labels(self.source, name).set(1 if name in suspended else 0)

    def stats(self) -> dict[str, str]:
        """Numbers for the heartbeat (and so for dashboards): limiter, calls, outcomes, suspended feeds."""
        with self._lock:
            outcomes = dict(self.outcomes)
        failures = sum(n for o, n in outcomes.items() if o != DATA)
        return {
            "tokens_left": str(self.limiter.tokens_left()),
            "limit": str(self.limiter.limit),
            "window_s": str(self.limiter.window_s),
            "calls_in_window": str(self.limiter.used()),
            "calls_per_minute": str(self.calls_per_minute()),
            "calls_total": str(self.polls),
            "failures_total": str(failures),
            "throttle_blocks": str(self.limiter.blocks),
            "suspended": ",".join(self.breakers.suspended()),
            **{f"outcome_{o}": str(n) for o, n in sorted(outcomes.items())},
        }
